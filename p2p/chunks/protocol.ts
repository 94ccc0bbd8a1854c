import type { Libp2p, PeerId, Stream } from '@libp2p/interface';
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils';
import { ChunkResponse, describeIssues, type ChunkRequest as ChunkRequestT } from '../../schema/index.ts';
import type { z } from 'zod';
import { ChunkProtocolError, describeError } from '../errors.ts';
import { CHUNK_PROTOCOL } from '../topics.ts';

/** Largest frame either side accepts: a chunk (manifests use 1 MiB; 64 MiB leaves room). */
export const MAX_CHUNK_FRAME = 64 * 1024 * 1024;
/** Largest JSON header frame. */
const MAX_HEADER = 64 * 1024;

/** What a peer answered to a chunk request. */
export type ChunkReply =
  | { readonly status: 'ok'; readonly bytes: Uint8Array }
  | { readonly status: 'missing' }
  | { readonly status: 'elsewhere'; readonly peers: readonly string[] };

/** Opens a length-prefixed view of a chunk-protocol stream. */
export function chunkFrames(stream: Stream): LengthPrefixedStream<Stream> {
  return lpStream(stream, { maxDataLength: MAX_CHUNK_FRAME });
}

/** Encodes a JSON header frame. */
export function encodeHeader(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

/** Decodes and validates a JSON header frame. */
export function decodeHeader<S extends z.ZodType>(bytes: Uint8Array, schema: S, what: string): z.output<S> {
  if (bytes.length > MAX_HEADER)
    throw new ChunkProtocolError(`${what}: expected at most ${MAX_HEADER} bytes, got ${bytes.length}`);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new ChunkProtocolError(`${what}: expected UTF-8 JSON`, { cause: err });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new ChunkProtocolError(`${what}: ${describeIssues(parsed.error.issues, raw).join('; ')}`);
  }
  return parsed.data;
}

/**
 * Asks one peer for one chunk over a fresh `/slotflow/chunk/1` stream. The bytes are not
 * verified here; the fetcher checks them against the manifest.
 */
export async function requestChunk(
  libp2p: Libp2p,
  peer: PeerId,
  request: ChunkRequestT,
  signal: AbortSignal,
): Promise<ChunkReply> {
  const stream = await libp2p.dialProtocol(peer, CHUNK_PROTOCOL, { signal, runOnLimitedConnection: true });
  try {
    const lp = chunkFrames(stream);
    await lp.write(encodeHeader(request), { signal });
    const header = decodeHeader((await lp.read({ signal })).subarray(), ChunkResponse, 'chunk response');
    switch (header.status) {
      case 'ok': {
        const body = (await lp.read({ signal })).subarray();
        if (body.length !== header.size) {
          throw new ChunkProtocolError(`peer announced ${header.size} bytes and sent ${body.length}`);
        }
        await stream.close({ signal }).catch(() => undefined);
        return { status: 'ok', bytes: body };
      }
      case 'missing':
      case 'elsewhere':
        await stream.close({ signal }).catch(() => undefined);
        return header;
      case 'error':
        throw new ChunkProtocolError(`peer refused the request: ${header.message}`);
    }
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(describeError(err)));
    throw err;
  }
}
