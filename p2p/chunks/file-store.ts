import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ChunkIntegrityError, P2pConfigError } from '../errors.ts';
import { sha256Digest, type ChunkStore } from './store.ts';

const DIGEST = /^sha256:([0-9a-f]{64})$/;

/**
 * Chunks as files under `<dir>/sha256/<first two hex>/<hex>`, written to a temp file, fsynced
 * and renamed, so a crash never leaves a partial chunk under its digest.
 */
export function createFileChunkStore(dir: string): ChunkStore {
  const pathOf = (digest: string): string => {
    const m = DIGEST.exec(digest);
    if (!m) throw new P2pConfigError(`expected a chunk digest like sha256:<64 hex>, got '${digest}'`);
    const hex = m[1]!;
    return join(dir, 'sha256', hex.slice(0, 2), hex);
  };
  return {
    name: `file:${dir}`,
    async has(digest) {
      try {
        return (await stat(pathOf(digest))).isFile();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw err;
      }
    },
    async get(digest) {
      try {
        return new Uint8Array(await readFile(pathOf(digest)));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    async put(digest, bytes) {
      const path = pathOf(digest);
      const got = sha256Digest(bytes);
      if (got !== digest)
        throw new ChunkIntegrityError(`chunk stored as ${digest} hashes to ${got}; not stored`);
      await mkdir(join(path, '..'), { recursive: true });
      const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
      const file = await open(tmp, 'w', 0o644);
      try {
        await file.writeFile(bytes);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(tmp, path);
    },
    async delete(digest) {
      await rm(pathOf(digest), { force: true });
    },
  };
}
