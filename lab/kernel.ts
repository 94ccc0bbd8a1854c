import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LabBuildError } from './errors.ts';

/** The guest kernel: the Debian `linux-image-amd64` kernel installed on the host. */
export interface GuestKernel {
  /** e.g. `6.1.0-57-amd64`. */
  readonly version: string;
  readonly vmlinuz: string;
  /** `/lib/modules/<version>`. */
  readonly modulesDir: string;
}

/**
 * The modules the guest loads from its initramfs, leaves first (the rest of each one's
 * dependencies come from modules.dep). Everything else the lab needs (devtmpfs, GPT, serial
 * console, unix sockets) is built into Debian's kernel.
 */
export const GUEST_MODULES = [
  'virtio_pci',
  'virtio_blk',
  'virtio_net',
  'crc32c_generic',
  'ext4',
  'squashfs',
  'vfat',
  'nls_cp437',
  'nls_ascii',
  'nls_utf8',
] as const;

/** Finds the newest installed kernel that has both its image in /boot and its modules. */
export async function findGuestKernel(boot = '/boot', modulesRoot = '/lib/modules'): Promise<GuestKernel> {
  let versions: string[] = [];
  try {
    versions = await readdir(modulesRoot);
  } catch {
    // reported below
  }
  const usable: GuestKernel[] = [];
  for (const version of versions.sort().reverse()) {
    const vmlinuz = join(boot, `vmlinuz-${version}`);
    try {
      await access(vmlinuz);
      await access(join(modulesRoot, version, 'modules.dep'));
      usable.push({ version, vmlinuz, modulesDir: join(modulesRoot, version) });
    } catch {
      // a modules dir without its kernel (or the reverse) is not usable
    }
  }
  const kernel = usable[0];
  if (!kernel) {
    throw new LabBuildError(
      `expected a kernel in ${boot}/vmlinuz-<version> with modules in ${modulesRoot}/<version>, ` +
        `found none; install linux-image-amd64 (bash scripts/system-packages.sh does it)`,
    );
  }
  return kernel;
}

/**
 * The module files (relative to the modules dir) for the given module names and everything they
 * depend on, in load order: every module after the ones it needs.
 */
export async function moduleClosure(kernel: GuestKernel, names: readonly string[]): Promise<string[]> {
  const deps = new Map<string, string[]>();
  for (const line of (await readFile(join(kernel.modulesDir, 'modules.dep'), 'utf8')).split('\n')) {
    const [file, rest] = line.split(':');
    if (file) deps.set(file, (rest ?? '').trim().split(/\s+/).filter(Boolean));
  }
  const byName = new Map<string, string>();
  for (const file of deps.keys()) {
    const base = file.slice(file.lastIndexOf('/') + 1).replace(/\.ko(\.(xz|zst|gz))?$/, '');
    byName.set(base.replace(/-/g, '_'), file);
  }
  const order: string[] = [];
  const visit = (file: string) => {
    if (order.includes(file)) return;
    for (const dep of deps.get(file) ?? []) visit(dep);
    order.push(file);
  };
  for (const name of names) {
    const file = byName.get(name);
    if (!file) {
      throw new LabBuildError(
        `expected module ${name} in ${kernel.modulesDir}/modules.dep, it is not there; ` +
          `the lab expects Debian's linux-image-amd64 kernel`,
      );
    }
    visit(file);
  }
  if (order.some((f) => !f.endsWith('.ko'))) {
    throw new LabBuildError(
      `the kernel's modules are compressed (${order.find((f) => !f.endsWith('.ko'))}); ` +
        `the initramfs loads them with busybox insmod, which expects plain .ko files`,
    );
  }
  return order;
}
