import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { ArtifactManifest } from '../../schema/index.ts';
import { ArtifactInvalidError, ArtifactUnavailableError, describeError } from '../errors.ts';
import type { ArtifactSource } from './source.ts';
import { sha256Of, verifiedPrefix } from './verify.ts';

/** What to fetch, where to, and for how long to keep trying. */
export interface FetchRequest {
  readonly manifest: ArtifactManifest;
  /** The staging file (resumed when it already holds good chunks). */
  readonly path: string;
  readonly sources: readonly ArtifactSource[];
  /** Give up (ArtifactUnavailableError) at this time (ms since epoch). */
  readonly deadline: number;
  readonly signal?: AbortSignal;
  readonly log?: Logger;
  /** First pause between rounds over the sources; doubles up to 10 s. */
  readonly retryDelayMs?: number;
  readonly onProgress?: (bytes: number) => void;
}

/** Which source delivered and how many bytes were downloaded now (0 when staging was complete). */
export interface FetchResult {
  readonly source: string;
  readonly bytes: number;
}

/** Reads a source's stream into the staging file chunk by chunk; a chunk is written only once verified. */
async function drain(
  stream: AsyncIterable<Uint8Array>,
  file: FileHandle,
  manifest: ArtifactManifest,
  position: { offset: number },
  source: string,
  onProgress?: (bytes: number) => void,
): Promise<void> {
  let index = Math.round(position.offset / manifest.chunkSize);
  const buffer = Buffer.allocUnsafe(manifest.chunkSize);
  let filled = 0;
  for await (const piece of stream) {
    for (let at = 0; at < piece.length;) {
      const chunk = manifest.chunks[index];
      if (!chunk)
        throw new ArtifactInvalidError(`${source} sends more than the manifest's ${manifest.size} bytes`);
      const take = Math.min(chunk.size - filled, piece.length - at);
      buffer.set(piece.subarray(at, at + take), filled);
      filled += take;
      at += take;
      if (filled < chunk.size) continue;
      const got = sha256Of(buffer.subarray(0, chunk.size));
      if (got !== chunk.digest) {
        throw new ArtifactInvalidError(
          `chunk ${chunk.index} from ${source} has digest ${got}, expected ${chunk.digest}`,
        );
      }
      await file.write(buffer, 0, chunk.size, position.offset);
      position.offset += chunk.size;
      index++;
      filled = 0;
      onProgress?.(position.offset);
    }
  }
}

/**
 * Downloads an image into its staging file, verifying every chunk before it is written, trying
 * the sources in order and resuming after the last good chunk (across retries and restarts).
 * A source that sends wrong bytes is dropped; when every source did, the image is invalid.
 */
export async function fetchImage(req: FetchRequest): Promise<FetchResult> {
  const { manifest } = req;
  await mkdir(dirname(req.path), { recursive: true });
  const begin = await verifiedPrefix(req.path, manifest);
  if (begin === manifest.size) return { source: 'staging', bytes: 0 };
  // Advanced chunk by chunk, so the next source resumes after the last verified chunk.
  const position = { offset: begin };
  const file = await open(req.path, begin === 0 ? 'w' : 'r+');
  const invalid = new Map<string, string>();
  const problems: string[] = [];
  let delay = req.retryDelayMs ?? 500;
  try {
    for (;;) {
      for (const source of req.sources) {
        if (invalid.has(source.name)) continue;
        req.signal?.throwIfAborted();
        try {
          const stream = await source.open(manifest, position.offset, req.signal);
          await drain(stream, file, manifest, position, source.name, req.onProgress);
          if (position.offset === manifest.size) {
            await file.sync();
            return { source: source.name, bytes: manifest.size - begin };
          }
          throw new ArtifactUnavailableError(
            `${source.name} ended the image at ${position.offset} of ${manifest.size} bytes`,
          );
        } catch (err) {
          req.signal?.throwIfAborted();
          if (err instanceof ArtifactInvalidError) invalid.set(source.name, err.message);
          else problems.push(`${source.name}: ${describeError(err)}`);
          req.log?.warn(
            { source: source.name, offset: position.offset, err: describeError(err) },
            'artifact source failed',
          );
        }
      }
      if (invalid.size === req.sources.length) {
        throw new ArtifactInvalidError([...invalid.values()].join('; '));
      }
      if (Date.now() + delay > req.deadline) {
        throw new ArtifactUnavailableError(
          `could not fetch ${manifest.digest} in time (${position.offset} of ${manifest.size} bytes); last problems: ${problems.slice(-3).join('; ')}`,
        );
      }
      await sleep(delay, undefined, req.signal ? { signal: req.signal } : {});
      delay = Math.min(delay * 2, 10_000);
    }
  } finally {
    await file.close();
  }
}
