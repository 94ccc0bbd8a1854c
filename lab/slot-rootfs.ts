import { chmod, copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execaRunner } from '../runtime/runner.ts';
import { copyBinary } from './elf.ts';
import { LabBuildError } from './errors.ts';
import { BUSYBOX } from './initramfs.ts';
import type { GuestKernel } from './kernel.ts';

const GUEST = new URL('./guest/', import.meta.url);

/** Where the lab's guest scripts live inside a slot. */
export const GUEST_LIB_DIR = '/usr/lib/slotflow-lab';

/** What goes into a lab root slot besides the base system. */
export interface SlotRootfsInput {
  readonly kernel: GuestKernel;
  /** The initramfs built for that kernel. */
  readonly initramfs: string;
  /** The OS version the slot carries (`/etc/os-release`). */
  readonly version: string;
  /** Adds Node.js and slotflow so the slot can run `slotflow agent` (see `agent-bundle.ts`). */
  readonly addAgent?: (root: string) => Promise<void>;
}

const DIRS = ['bin', 'sbin', 'dev', 'proc', 'sys', 'run', 'tmp', 'data', 'boot/efi', 'etc', 'root'];

/** The busybox applets, each to become a symlink in /bin. */
async function busyboxApplets(): Promise<string[]> {
  const result = await execaRunner.run(BUSYBOX, ['--list'], { timeoutMs: 10_000 });
  if (!result.ok)
    throw new LabBuildError(`${BUSYBOX} --list failed: ${result.failure}; reinstall busybox-static`);
  return result.stdout.split('\n').filter((name) => /^[\w.[-]+$/.test(name) && name !== 'busybox');
}

/**
 * Lays out a bootable lab root filesystem in `root` (an empty directory): the kernel and
 * initramfs in /boot (each slot carries its own, so GRUB boots the slot's kernel), busybox,
 * grub-editenv with its libraries, the lab's /sbin/init and service scripts, and optionally the
 * agent. The result is what `slotflow image build --rootfs DIR --format squashfs` (or ext4) packs.
 */
export async function layOutSlotRootfs(root: string, input: SlotRootfsInput): Promise<void> {
  for (const dir of DIRS) await mkdir(join(root, dir), { recursive: true });
  await copyFile(input.kernel.vmlinuz, join(root, 'boot/vmlinuz'));
  await copyFile(input.initramfs, join(root, 'boot/initrd.img'));
  await copyFile(BUSYBOX, join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  for (const applet of await busyboxApplets()) await symlink('busybox', join(root, 'bin', applet));
  await copyBinary(root, '/usr/bin/grub-editenv', '/bin/grub-editenv');

  const lib = join(root, GUEST_LIB_DIR);
  await mkdir(lib, { recursive: true });
  for (const script of ['probe.sh', 'reboot.sh', 'agent.sh', 'ddbench.sh']) {
    await writeFile(join(lib, script), await readFile(new URL(script, GUEST)), { mode: 0o755 });
  }
  await writeFile(join(root, 'sbin/init'), await readFile(new URL('init.sh', GUEST)), { mode: 0o755 });
  await writeFile(
    join(root, 'etc/os-release'),
    `NAME="slotflow lab"\nID=slotflow-lab\nVERSION="${input.version}"\nVERSION_ID="${input.version}"\n`,
  );
  await writeFile(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(join(root, 'etc/group'), 'root:x:0:\n');
  await writeFile(join(root, 'etc/hosts'), '127.0.0.1 localhost slotflow-lab\n');
  await input.addAgent?.(root);
}
