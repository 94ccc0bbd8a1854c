import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { ArtifactManifest } from '../../schema/index.ts';
import { fsyncDir } from '../atomic-file.ts';
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
  /**
   * A source that brings no byte for this long (opening included) is given up for this round
   * and the next one is tried (default 30 s). A source whose server vanished mid-download (a
   * NATS outage) can otherwise keep the fetch waiting without ever failing.
   */
  readonly stallTimeoutMs?: number;
  readonly onProgress?: (bytes: number) => void;
}

/** Which source delivered and how many bytes were downloaded now (0 when staging was complete). */
export interface FetchResult {
  readonly source: string;
  readonly bytes: number;
}

interface StallWatch {
  /** Aborted on a stall or when the fetch's own signal is. */
  readonly signal: AbortSignal;
  /** Settles as `step` does, or rejects with ArtifactUnavailableError once the source stalls. */
  guard<T>(step: Promise<T>): Promise<T>;
  /** Data arrived: the stall clock starts again. */
  progress(): void;
  dispose(): void;
}

/** Default of FetchRequest.stallTimeoutMs. */
export const DEFAULT_STALL_TIMEOUT_MS = 30_000;

/**
 * A watchdog over one source attempt: `guard` races a step against the time since the last
 * progress; `progress` re-arms it. On a stall the attempt's abort signal fires too, for sources
 * that watch it.
 */
function stallWatch(source: string, limitMs: number, outer?: AbortSignal): StallWatch {
  const controller = new AbortController();
  const onOuter = () => controller.abort(outer?.reason);
  outer?.addEventListener('abort', onOuter, { once: true });
  let timer: NodeJS.Timeout | undefined;
  let fail: ((err: Error) => void) | undefined;
  const stalled = new Promise<never>((_, reject) => (fail = reject));
  stalled.catch(() => undefined);
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const err = new ArtifactUnavailableError(
        `${source} brought no data for ${limitMs} ms; trying the next source`,
      );
      controller.abort(err);
      fail?.(err);
    }, limitMs);
  };
  arm();
  return {
    signal: controller.signal,
    guard: <T>(step: Promise<T>): Promise<T> => Promise.race([step, stalled]),
    progress: arm,
    dispose() {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
    },
  };
}

/** Reads a source's stream into the staging file chunk by chunk; a chunk is written only once verified. */
async function drain(
  stream: AsyncIterable<Uint8Array>,
  file: FileHandle,
  manifest: ArtifactManifest,
  position: { offset: number },
  source: string,
  watch: StallWatch,
  onProgress?: (bytes: number) => void,
): Promise<void> {
  let index = Math.round(position.offset / manifest.chunkSize);
  const buffer = Buffer.allocUnsafe(manifest.chunkSize);
  let filled = 0;
  const pieces = stream[Symbol.asyncIterator]();
  try {
    for (let next = await watch.guard(pieces.next()); !next.done; next = await watch.guard(pieces.next())) {
      watch.progress();
      const piece = next.value;
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
  } catch (err) {
    // Ends the source's stream; a stalled one may never settle, so it is not waited for.
    void Promise.resolve(pieces.return?.()).catch(() => undefined);
    throw err;
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
        const watch = stallWatch(source.name, req.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS, req.signal);
        try {
          const stream = await watch.guard(source.open(manifest, position.offset, watch.signal));
          await drain(stream, file, manifest, position, source.name, watch, req.onProgress);
          if (position.offset === manifest.size) {
            await file.sync();
            // The staging file is new: without its directory entry on disk a power cut loses it
            // after the journal has recorded the image as fetched.
            await fsyncDir(dirname(req.path));
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
        } finally {
          watch.dispose();
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
