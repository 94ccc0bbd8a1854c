import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LabDisk } from './lab-disk.ts';
import { runTool } from './tools.ts';

/** What a release of the lab slot is like. */
export const ReleaseKind = {
  /** The lab disk's own slot, with its version changed: boots and runs the agent. */
  good: 'good',
  /** The kernel boots but /sbin/init exits at once: the kernel panics and (panic=10) resets. */
  initPanics: 'init-panics',
} as const;
export type ReleaseKind = (typeof ReleaseKind)[keyof typeof ReleaseKind];

// PID 1 exiting makes the kernel panic ("Attempted to kill init!"); userspace never comes up.
const PANICKING_INIT =
  '#!/bin/busybox sh\necho "slotflow-lab: this release cannot start; init exits"\nexit 1\n';

/**
 * Lays out the rootfs of a new release of the lab slot in `out` (a new directory): a copy of the
 * lab disk's slot rootfs with /etc/os-release at `version`, for `slotflow image build --rootfs`
 * (the image build workflow), so the image a rollout writes is made by slotflow's own pipeline.
 */
export async function writeReleaseRootfs(
  disk: LabDisk,
  out: string,
  version: string,
  kind: ReleaseKind = ReleaseKind.good,
): Promise<string> {
  await rm(out, { recursive: true, force: true });
  await runTool('cp', ['-a', disk.slot.rootfs, out], 'copying the lab slot rootfs');
  await writeFile(
    join(out, 'etc/os-release'),
    `NAME="slotflow lab"\nID=slotflow-lab\nVERSION="${version}"\nVERSION_ID="${version}"\n`,
  );
  if (kind === ReleaseKind.initPanics) {
    await rm(join(out, 'sbin/init'));
    await writeFile(join(out, 'sbin/init'), PANICKING_INIT, { mode: 0o755 });
  }
  return out;
}
