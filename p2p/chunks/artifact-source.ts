import type { ArtifactManifest } from '../../schema/index.ts';
import { ChunkFetchError } from '../errors.ts';
import type { FetchChunksReport } from './fetcher.ts';
import type { ChunkService } from './service.ts';

/**
 * The peers as one more artifact source with the agent's source shape (`name`, `open(manifest,
 * offset, signal)` → the image's bytes from `offset`): it fetches the missing chunks from peers
 * (verified, announced, so this node serves them next), then streams them from the chunk store
 * in order. Throws ChunkFetchError when peers cannot deliver in time; the agent maps it to its
 * "source unavailable" error and tries the next source.
 */
export function createPeerArtifactSource(
  chunks: ChunkService,
  options: { fetchTimeoutMs?: number; onFetched?: (report: FetchChunksReport) => void } = {},
): {
  readonly name: string;
  open(manifest: ArtifactManifest, offset: number, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>>;
} {
  return {
    name: 'p2p',
    async open(manifest, offset, signal) {
      const report = await chunks.fetch({
        manifest,
        signal,
        deadline: Date.now() + (options.fetchTimeoutMs ?? 30 * 60_000),
      });
      options.onFetched?.(report);
      const first = manifest.chunkSize > 0 ? Math.floor(offset / manifest.chunkSize) : 0;
      const skip = offset - first * manifest.chunkSize;
      return (async function* () {
        for (let i = first; i < manifest.chunks.length; i++) {
          const chunk = manifest.chunks[i]!;
          const bytes = await chunks.store.get(chunk.digest);
          if (!bytes) {
            throw new ChunkFetchError(
              `chunk ${i} of image ${manifest.digest} vanished from ${chunks.store.name}`,
              [i],
            );
          }
          yield i === first && skip > 0 ? bytes.subarray(skip) : bytes;
        }
      })();
    },
  };
}
