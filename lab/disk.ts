import { stat, truncate, writeFile, rm } from 'node:fs/promises';
import { LabBuildError } from './errors.ts';
import { runTool } from './tools.ts';

const MIB = 1024 * 1024;
const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const LINUX_TYPE = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';
// Fixed GUIDs so the same partition images give the same disk.
const DISK_GUID = '5107F10A-0000-4000-8000-000000000000';
const partGuid = (n: number) => `5107F10A-0000-4000-8000-00000000000${n}`;

/** One partition of a lab disk: its GPT name, size, and the image written into it (if any). */
export interface PartitionSpec {
  /** GPT partition name; the guest finds partitions by it (`/dev/disk/by-partlabel/<name>`). */
  readonly name: 'esp' | 'root-a' | 'root-b' | 'data';
  readonly sizeMiB: number;
  /** A file system image written at the partition's start; it must not be larger than the partition. */
  readonly image?: string;
}

/** The lab's partition order: GRUB and the guest address slots as partitions 2 and 3. */
export const PARTITION_ORDER = ['esp', 'root-a', 'root-b', 'data'] as const;

/** Where each partition starts, in MiB from the start of the disk (1 MiB alignment). */
export function partitionLayout(
  parts: readonly PartitionSpec[],
): { name: string; startMiB: number; sizeMiB: number }[] {
  let at = 1;
  return parts.map((p) => {
    const placed = { name: p.name, startMiB: at, sizeMiB: p.sizeMiB };
    at += p.sizeMiB;
    return placed;
  });
}

/**
 * Assembles a GPT disk image file from partition images, without loop devices: `sfdisk` writes
 * the partition table into the (sparse) file, then each image is copied to its partition's
 * offset with `dd conv=notrunc`.
 */
export async function assembleDisk(path: string, parts: readonly PartitionSpec[]): Promise<void> {
  const names = parts.map((p) => p.name).join(',');
  if (names !== PARTITION_ORDER.join(',')) {
    throw new LabBuildError(
      `a lab disk needs the partitions ${PARTITION_ORDER.join(', ')} in that order, got ${names}`,
    );
  }
  const layout = partitionLayout(parts);
  const last = layout[layout.length - 1]!;
  const totalMiB = last.startMiB + last.sizeMiB + 1; // room for the backup GPT
  for (const part of parts) {
    if (!part.image) continue;
    const size = (await stat(part.image)).size;
    if (size > part.sizeMiB * MIB) {
      throw new LabBuildError(
        `the ${part.name} image ${part.image} is ${Math.ceil(size / MIB)} MiB, larger than its ` +
          `${part.sizeMiB} MiB partition; give the partition more room`,
      );
    }
  }
  await rm(path, { force: true });
  await writeFile(path, '');
  await truncate(path, totalMiB * MIB);
  const script = [
    'label: gpt',
    `label-id: ${DISK_GUID}`,
    'unit: sectors',
    ...layout.map(
      (p, i) =>
        `start=${p.startMiB * 2048}, size=${p.sizeMiB * 2048}, type=${p.name === 'esp' ? ESP_TYPE : LINUX_TYPE}, ` +
        `uuid=${partGuid(i + 1)}, name="${p.name}"`,
    ),
  ].join('\n');
  await runTool(
    'sfdisk',
    ['--quiet', '--no-reread', '--no-tell-kernel', path],
    'writing the GPT partition table',
    {
      input: `${script}\n`,
    },
  );
  for (const [i, part] of parts.entries()) {
    if (!part.image) continue;
    await runTool(
      'dd',
      [
        `if=${part.image}`,
        `of=${path}`,
        'bs=1M',
        `seek=${layout[i]!.startMiB}`,
        'conv=notrunc,sparse',
        'status=none',
      ],
      `writing the ${part.name} partition`,
      { timeoutMs: 300_000 },
    );
  }
}
