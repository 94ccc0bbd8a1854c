import { mkdir, readdir } from 'node:fs/promises';
import { labCacheRoot } from './cache.ts';
import { LabBuildError } from './errors.ts';
import { buildInitramfs } from './initramfs.ts';
import { findGuestKernel } from './kernel.ts';
import { layOutSlotRootfs } from './slot-rootfs.ts';
import type { AgentBundle } from './agent-bundle.ts';

/**
 * Lays out a bootable lab slot rootfs in `out` (which must be empty or new), for
 * `slotflow image build --rootfs OUT --format squashfs` (or ext4): the image a rollout writes into a lab VM's
 * passive slot is then built by the same pipeline as any other slot image.
 */
export async function writeLabRootfs(
  out: string,
  o: { version: string; agent?: AgentBundle; cacheRoot?: string },
): Promise<void> {
  await mkdir(out, { recursive: true });
  if ((await readdir(out)).length > 0) {
    throw new LabBuildError(`expected an empty directory for the rootfs, ${out} has files; pass a new --out`);
  }
  const kernel = await findGuestKernel();
  const initramfs = await buildInitramfs(kernel, o.cacheRoot ?? labCacheRoot());
  await layOutSlotRootfs(out, {
    kernel,
    initramfs,
    version: o.version,
    ...(o.agent ? { addAgent: (root: string) => o.agent!.add(root) } : {}),
  });
}
