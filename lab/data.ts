import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runTool } from './tools.ts';

/**
 * Size of a lab VM's data partition in MiB: room for the agent's journal and one downloaded slot
 * image (an agent slot is about 240 MiB). The disk is sparse, so unused space costs nothing.
 */
export const DATA_SIZE_MIB = 640;

/**
 * Builds a VM's data partition: an ext4 file system (made with `mkfs.ext4 -d`, no mount) that the
 * guest mounts on /data; `files` maps paths inside it to their contents (the lab's settings in
 * `lab/lab.env`, a probe plan, the agent's trusted keys). The agent keeps its journal here.
 */
export async function buildDataImage(path: string, files: Readonly<Record<string, string>>): Promise<void> {
  const staging = await mkdtemp(join(tmpdir(), 'slotflow-lab-data-'));
  try {
    for (const [file, content] of Object.entries(files)) {
      const target = join(staging, file);
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, content);
    }
    await rm(path, { force: true });
    await writeFile(path, '');
    await truncate(path, DATA_SIZE_MIB * 1024 * 1024);
    await runTool('mkfs.ext4', ['-q', '-F', '-L', 'data', '-d', staging, path], 'making the data partition');
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
