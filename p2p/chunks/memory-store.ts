import { ChunkIntegrityError } from '../errors.ts';
import { sha256Digest, type ChunkStore } from './store.ts';

/** Chunks in memory: for seeds in benchmarks and tests, and for small images. */
export function createMemoryChunkStore(): ChunkStore & { size(): number } {
  const chunks = new Map<string, Uint8Array>();
  return {
    name: 'memory',
    has: async (digest) => chunks.has(digest),
    get: async (digest) => chunks.get(digest),
    async put(digest, bytes) {
      const got = sha256Digest(bytes);
      if (got !== digest)
        throw new ChunkIntegrityError(`chunk stored as ${digest} hashes to ${got}; not stored`);
      chunks.set(digest, bytes);
    },
    delete: async (digest) => void chunks.delete(digest),
    size: () => chunks.size,
  };
}
