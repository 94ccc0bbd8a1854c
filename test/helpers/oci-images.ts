// Small real images for the OCI tests: a busybox rootfs (a shell, so a Containerfile can RUN),
// a Containerfile built on it, and a way to read a file out of an ext4 slot image.
import { copyFile, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { imageFromRootfs, pushImage, type PushedImage } from '../../activities/builders/oci-push.ts';
import { execaRunner } from '../../runtime/runner.ts';

/** Debian's static busybox (busybox-static), the shell of the test images. */
export const BUSYBOX = '/bin/busybox';

/** A root filesystem with busybox as /bin/sh, an os-release and a file the next layer removes. */
export async function writeBusyboxRootfs(dir: string, version: string): Promise<string> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  await mkdir(join(dir, 'etc'), { recursive: true });
  await copyFile(BUSYBOX, join(dir, 'bin/busybox'));
  await symlink('busybox', join(dir, 'bin/sh'));
  await writeFile(join(dir, 'etc/os-release'), `NAME="slotflow test OS"\nVERSION_ID=${version}\n`);
  await writeFile(join(dir, 'etc/removed-later'), 'the Containerfile removes this file\n');
  return dir;
}

/** A Containerfile on `base` whose RUN step writes /etc/from-run and removes /etc/removed-later. */
export async function writeContainerfile(dir: string, base: string, text: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'Containerfile');
  await writeFile(file, `FROM ${base}\nRUN echo '${text}' > /etc/from-run && rm /etc/removed-later\n`);
  return file;
}

/** Pushes a rootfs as a one-layer image and removes the local copy; returns the pinned reference. */
export async function pushRootfs(rootfs: string, destination: string): Promise<PushedImage> {
  const local = await imageFromRootfs(execaRunner, rootfs, `localhost/slotflow-test:${process.pid}`);
  try {
    return await pushImage(execaRunner, local, destination);
  } finally {
    await execaRunner.run('buildah', ['rmi', local], { timeoutMs: 60_000 });
  }
}

/** Removes the images buildah pulled from a registry (a Containerfile's base), by registry address. */
export async function removePulledImages(registry: string): Promise<void> {
  const listed = await execaRunner.run('buildah', ['images', '--format', '{{.ID}} {{.Name}}'], {
    timeoutMs: 60_000,
  });
  const ids = listed.stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([, name]) => name?.startsWith(`${registry}/`))
    .map(([id]) => id as string);
  if (ids.length > 0) await execaRunner.run('buildah', ['rmi', ...ids], { timeoutMs: 60_000 });
}

/** A file's content inside an ext4 image (read with debugfs, final newline dropped); undefined when absent. */
export async function readFromExt4(image: string, path: string): Promise<string | undefined> {
  const result = await execaRunner.run('debugfs', ['-R', `cat ${path}`, image], { timeoutMs: 60_000 });
  if (!result.ok) throw new Error(`debugfs could not read ${image}: ${result.failure}`);
  if (/File not found/.test(result.stderr)) return undefined;
  return result.stdout;
}

/** Every `a.img` / `b.img` slot file under an agent's data directory. */
export async function slotImages(dataDir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dataDir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && /^[ab]\.img$/.test(entry.name)) found.push(join(entry.parentPath, entry.name));
  }
  return found.sort();
}
