import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cacheKey, cachedDir, fileDigest } from './cache.ts';
import { gzipCpio, type CpioEntry } from './cpio.ts';
import { LabBuildError } from './errors.ts';
import { GUEST_MODULES, moduleClosure, type GuestKernel } from './kernel.ts';

/** The statically linked busybox of Debian's busybox-static: the guest's only userland tool box. */
export const BUSYBOX = '/bin/busybox';
const INIT_SCRIPT = new URL('./guest/initramfs-init.sh', import.meta.url);

/** Reads the static busybox, refusing a dynamically linked one (it would not run in the initramfs). */
export async function readBusybox(path = BUSYBOX): Promise<Buffer> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    throw new LabBuildError(
      `expected a static busybox at ${path}, found none; install busybox-static (bash scripts/system-packages.sh does it)`,
      { cause: err },
    );
  }
  if (data.includes(Buffer.from('/lib64/ld-linux'))) {
    throw new LabBuildError(
      `${path} is dynamically linked; the initramfs needs busybox-static's static busybox (apt-get install busybox-static)`,
    );
  }
  return data;
}

/**
 * Builds (or takes from the cache) the lab's initramfs for a kernel: busybox, the virtio, ext4, squashfs
 * and FAT modules in load order, and an /init that mounts root=PARTLABEL=… and switches to it.
 * Returns the path of the gzip-compressed cpio archive.
 */
export async function buildInitramfs(kernel: GuestKernel, cacheRoot: string): Promise<string> {
  const modules = await moduleClosure(kernel, GUEST_MODULES);
  const key = cacheKey([
    'initramfs/1',
    kernel.version,
    await fileDigest(kernel.vmlinuz),
    modules.join(','),
    await fileDigest(BUSYBOX),
    await fileDigest(INIT_SCRIPT.pathname),
  ]);
  const { dir } = await cachedDir(cacheRoot, 'initramfs', key, async (out) => {
    const entries: CpioEntry[] = [
      { type: 'dir', path: 'bin' },
      { type: 'file', path: 'bin/busybox', data: await readBusybox(), mode: 0o755 },
      { type: 'file', path: 'init', data: await readFile(INIT_SCRIPT), mode: 0o755 },
      { type: 'dir', path: 'lib' },
      { type: 'dir', path: 'lib/modules' },
      {
        type: 'file',
        path: 'lib/modules/load-order',
        data: Buffer.from(modules.map(baseName).join('\n') + '\n'),
      },
    ];
    for (const module of modules) {
      entries.push({
        type: 'file',
        path: `lib/modules/${baseName(module)}`,
        data: await readFile(join(kernel.modulesDir, module)),
      });
    }
    await writeFile(join(out, 'initrd.img'), gzipCpio(entries));
  });
  return join(dir, 'initrd.img');
}

const baseName = (path: string) => path.slice(path.lastIndexOf('/') + 1);
