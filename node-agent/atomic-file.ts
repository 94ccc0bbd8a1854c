import { open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Flushes a file's or directory's data and metadata to disk. */
async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Flushes a directory entry to disk, so a rename or unlink in it survives a power loss. */
export const fsyncDir = fsyncPath;

/**
 * Flushes a file another program wrote (and its directory entry, in case it replaced the file)
 * to disk: what such tools leave in the page cache is lost with the power.
 */
export async function fsyncWritten(path: string): Promise<void> {
  await fsyncPath(path);
  await fsyncPath(dirname(path));
}

/**
 * Replaces `path` with `data` all at once: write a temp file, fsync it, rename it over the old
 * one, fsync the directory. A crash leaves either the old or the new content, never a mix.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  const handle = await open(tmp, 'w', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

/** Removes a file and flushes its directory; a missing file is fine. */
export async function unlinkDurable(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  await fsyncDir(dirname(path));
}
