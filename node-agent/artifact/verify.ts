import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { ArtifactManifest } from '../../schema/index.ts';
import { ArtifactInvalidError } from '../errors.ts';

/** `sha256:<hex>` of some bytes. */
export function sha256Of(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/**
 * How many bytes at the start of `path` are whole chunks matching the manifest; the file is cut
 * to that length, so a download resumes right after the last good chunk. 0 when there is no file.
 */
export async function verifiedPrefix(path: string, manifest: ArtifactManifest): Promise<number> {
  let handle;
  try {
    handle = await open(path, 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  try {
    const size = (await handle.stat()).size;
    const buffer = Buffer.allocUnsafe(manifest.chunkSize);
    let good = 0;
    for (const chunk of manifest.chunks) {
      if (good + chunk.size > size) break;
      const { bytesRead } = await handle.read(buffer, 0, chunk.size, good);
      if (bytesRead !== chunk.size || sha256Of(buffer.subarray(0, chunk.size)) !== chunk.digest) break;
      good += chunk.size;
    }
    if (good !== size) await handle.truncate(good);
    return good;
  } finally {
    await handle.close();
  }
}

/** Checks a whole image file against the manifest's size and digest; throws ArtifactInvalidError. */
export async function verifyImageFile(path: string, manifest: ArtifactManifest): Promise<void> {
  const hash = createHash('sha256');
  let size = 0;
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(4 * 1024 * 1024);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, size);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
  } finally {
    await handle.close();
  }
  if (size !== manifest.size) {
    throw new ArtifactInvalidError(`the image has ${size} bytes, the manifest says ${manifest.size}`);
  }
  const digest = `sha256:${hash.digest('hex')}`;
  if (digest !== manifest.digest) {
    throw new ArtifactInvalidError(`the image's digest is ${digest}, the manifest says ${manifest.digest}`);
  }
}
