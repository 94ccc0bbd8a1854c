import { createHash } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ArtifactManifest } from '../../schema/index.ts';
import { ChunkFetchError, ChunkIntegrityError } from '../errors.ts';
import type { ChunkStore } from './store.ts';

/**
 * Splits an image file into the manifest's chunks and stores them (each verified by the store),
 * so this node can seed it. Throws ChunkIntegrityError when the file is not the manifest's image.
 */
export async function importImage(
  store: ChunkStore,
  manifest: ArtifactManifest,
  path: string,
): Promise<void> {
  const file = await open(path, 'r');
  try {
    let offset = 0;
    for (const chunk of manifest.chunks) {
      const buffer = new Uint8Array(chunk.size);
      let filled = 0;
      while (filled < chunk.size) {
        const { bytesRead } = await file.read(buffer, filled, chunk.size - filled, offset + filled);
        if (bytesRead === 0) {
          throw new ChunkIntegrityError(
            `${path} ends at ${offset + filled} bytes, expected ${manifest.size} (image ${manifest.digest})`,
          );
        }
        filled += bytesRead;
      }
      if (!(await store.has(chunk.digest))) await store.put(chunk.digest, buffer);
      offset += chunk.size;
    }
  } finally {
    await file.close();
  }
}

/**
 * Writes the image from stored chunks to `path` (temp file, fsync, rename), checking the whole
 * image's sha256 against the manifest. Throws ChunkFetchError when chunks are missing.
 */
export async function assembleImage(
  store: ChunkStore,
  manifest: ArtifactManifest,
  path: string,
): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.partial`;
  const whole = createHash('sha256');
  const file = await open(tmp, 'w');
  try {
    for (const chunk of manifest.chunks) {
      const bytes = await store.get(chunk.digest);
      if (!bytes) {
        throw new ChunkFetchError(
          `chunk ${chunk.index} of image ${manifest.digest} is not in ${store.name}; fetch it first`,
          [chunk.index],
        );
      }
      whole.update(bytes);
      await file.write(bytes);
    }
    await file.sync();
  } catch (err) {
    await file.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await file.close();
  const got = `sha256:${whole.digest('hex')}`;
  if (got !== manifest.digest) {
    await rm(tmp, { force: true });
    throw new ChunkIntegrityError(`assembled image hashes to ${got}, expected ${manifest.digest}`);
  }
  await rename(tmp, path);
}
