import { ESP_GRUBENV } from './esp.ts';
import { partitionLayout, type PartitionSpec } from './disk.ts';
import { runTool } from './tools.ts';

/**
 * The GRUB environment a VM's disk holds now, read from the ESP inside the disk image with
 * mtools (no mount); only meaningful while the VM is powered off.
 */
export async function readDiskGrubenv(
  disk: string,
  partitions: readonly PartitionSpec[],
): Promise<Record<string, string>> {
  const esp = partitionLayout(partitions).find((p) => p.name === 'esp')!;
  const text = await runTool(
    'mtype',
    ['-i', `${disk}@@${esp.startMiB}M`, `::${ESP_GRUBENV}`],
    `reading the GRUB environment on ${disk}`,
    { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } },
  );
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_][\w]*)=(.*)$/.exec(line);
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}
