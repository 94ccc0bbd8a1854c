import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { cacheKey, cachedDir, fileDigest, labCacheRoot } from './cache.ts';
import { buildDataImage, DATA_SIZE_MIB } from './data.ts';
import { assembleDisk, partitionLayout, type PartitionSpec } from './disk.ts';
import { buildEsp, ESP_SIZE_MIB, LAB_GRUB_CFG } from './esp.ts';
import { buildInitramfs } from './initramfs.ts';
import { findGuestKernel } from './kernel.ts';
import { buildSlotImage, type SlotImage } from './slot-image.ts';
import { runTool } from './tools.ts';

const MIB = 1024 * 1024;

/** A built (cached) lab disk: ESP with GRUB, two root slots holding the same image, empty data. */
export interface LabDisk {
  /** The pristine disk image; VMs boot copies of it (see cloneDisk). */
  readonly path: string;
  readonly slot: SlotImage;
  readonly partitions: readonly PartitionSpec[];
  /** Seconds the build took (near zero on a cache hit). */
  readonly seconds: number;
  readonly cached: boolean;
}

/** Options for buildLabDisk. */
export interface LabDiskOptions {
  /** OS version of the slot image (default `lab-1`). */
  readonly version?: string;
  /** `$SLOTFLOW_CACHE/lab` by default. */
  readonly cacheRoot?: string;
  /** The GRUB configuration to boot with (default the lab's own A/B grub.cfg). */
  readonly grubCfg?: string;
  /** Node.js and slotflow in the slot (see agent-bundle.ts); without it the slot runs the boot probe. */
  readonly agent?: { readonly key: string; readonly add: (root: string) => Promise<void> };
}

const roundUp = (n: number, to: number) => Math.ceil(n / to) * to;

/**
 * Builds every piece of a lab disk (kernel and modules from the host's Debian kernel, the
 * initramfs, the slot image, the ESP), each cached by the digests of its inputs, and assembles
 * the disk. A second call with the same inputs returns the cached disk at once.
 */
export async function buildLabDisk(o: LabDiskOptions = {}): Promise<LabDisk> {
  const started = Date.now();
  const cacheRoot = o.cacheRoot ?? labCacheRoot();
  const kernel = await findGuestKernel();
  const initramfs = await buildInitramfs(kernel, cacheRoot);
  const slot = await buildSlotImage({
    kernel,
    initramfs,
    version: o.version ?? 'lab-1',
    cacheRoot,
    ...(o.agent ? { agent: o.agent } : {}),
  });
  const esp = await buildEsp(cacheRoot, o.grubCfg ?? LAB_GRUB_CFG);
  // Each slot gets twice the image's size (at least 64 MiB), so a later, larger image still fits.
  const slotMiB = Math.max(64, roundUp((2 * (await stat(slot.path)).size) / MIB, 64));
  const partitions: PartitionSpec[] = [
    { name: 'esp', sizeMiB: ESP_SIZE_MIB, image: esp },
    { name: 'root-a', sizeMiB: slotMiB, image: slot.path },
    { name: 'root-b', sizeMiB: slotMiB, image: slot.path },
    { name: 'data', sizeMiB: DATA_SIZE_MIB },
  ];
  const key = cacheKey([
    'disk/2',
    await fileDigest(esp),
    await fileDigest(slot.path),
    String(slotMiB),
    String(DATA_SIZE_MIB),
  ]);
  const { dir, hit } = await cachedDir(cacheRoot, 'disk', key, (out) =>
    assembleDisk(join(out, 'disk.img'), partitions),
  );
  return {
    path: join(dir, 'disk.img'),
    slot,
    partitions,
    seconds: (Date.now() - started) / 1000,
    cached: hit,
  };
}

/**
 * Copies the pristine disk for one VM (sparse, so it costs only the written blocks) and writes
 * that VM's data partition: `dataFiles` maps paths on /data to contents.
 */
export async function cloneDisk(
  disk: LabDisk,
  path: string,
  dataFiles: Readonly<Record<string, string>>,
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await runTool('cp', ['--sparse=always', disk.path, path], 'copying the lab disk');
  const data = `${path}.data`;
  await buildDataImage(data, dataFiles);
  const start = partitionLayout(disk.partitions).find((p) => p.name === 'data')!.startMiB;
  await runTool(
    'dd',
    [`if=${data}`, `of=${path}`, 'bs=1M', `seek=${start}`, 'conv=notrunc,sparse', 'status=none'],
    'writing the data partition',
  );
  await rm(data, { force: true });
}
