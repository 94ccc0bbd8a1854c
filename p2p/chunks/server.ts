import type { Connection, Libp2p, Stream } from '@libp2p/interface';
import type { Logger } from 'pino';
import { ChunkRequest, type ChunkResponse } from '../../schema/index.ts';
import { describeError } from '../errors.ts';
import { CHUNK_PROTOCOL } from '../topics.ts';
import { chunkFrames, decodeHeader, encodeHeader } from './protocol.ts';
import type { ChunkStore } from './store.ts';

/** Upload accounting of one node: what the origin egress figures are made of. */
export interface ChunkServerStats {
  requests: number;
  chunksServed: number;
  bytesServed: number;
  missing: number;
  /** Requests answered with `elsewhere` (the upload was spared). */
  redirected: number;
  errors: number;
}

export interface ChunkServerInit {
  readonly libp2p: Libp2p;
  readonly store: ChunkStore;
  /** Fetching peers (partial holders, from the directory) known to hold a chunk, for redirects. */
  readonly holdersOf: (digest: string) => string[];
  /** True when this node holds a whole image the chunk belongs to (it seeds it). */
  readonly seeds: (digest: string) => boolean;
  /**
   * Spare a seed's upload: a chunk that fetching peers hold (or that this node sent to a peer in
   * the last `recentMs`) is answered with `elsewhere` unless the client forces. Peers that are
   * still fetching always serve, so redirects never bounce between them. Default true.
   */
  readonly spareUpload?: boolean;
  /** How long a peer that was just sent a chunk counts as holding it (default 60 s). */
  readonly recentMs?: number;
  /** Concurrent inbound chunk streams per connection (default 32). */
  readonly maxInboundStreams?: number;
  readonly log: Logger;
}

/** Serves the chunks this node holds over `/slotflow/chunk/1`. */
export interface ChunkServer {
  readonly stats: ChunkServerStats;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The chunk server answers one request per stream. With `spareUpload` it behaves like a
 * BitTorrent super-seed: it uploads a chunk once and points later askers at the peers that
 * have it since, so a seed's egress stays near one image however many nodes fetch.
 */
export function createChunkServer(init: ChunkServerInit): ChunkServer {
  const { libp2p, store, log } = init;
  const spare = init.spareUpload ?? true;
  const recentMs = init.recentMs ?? 60_000;
  const stats: ChunkServerStats = {
    requests: 0,
    chunksServed: 0,
    bytesServed: 0,
    missing: 0,
    redirected: 0,
    errors: 0,
  };
  // digest -> peer -> when this node sent it the chunk
  const recent = new Map<string, Map<string, number>>();

  function othersHolding(digest: string, requester: string): string[] {
    const now = Date.now();
    const peers = new Set(init.holdersOf(digest));
    for (const [peer, at] of recent.get(digest) ?? []) {
      if (now - at < recentMs) peers.add(peer);
    }
    peers.delete(requester);
    peers.delete(libp2p.peerId.toString());
    return [...peers].slice(0, 8);
  }

  function noteSent(digest: string, peer: string): void {
    let m = recent.get(digest);
    if (!m) recent.set(digest, (m = new Map()));
    m.set(peer, Date.now());
    if (recent.size > 4096) {
      const now = Date.now();
      for (const [d, peers] of recent) {
        for (const [p, at] of peers) if (now - at >= recentMs) peers.delete(p);
        if (peers.size === 0) recent.delete(d);
      }
    }
  }

  function forgetSent(digest: string, peer: string): void {
    recent.get(digest)?.delete(peer);
  }

  async function handle(stream: Stream, connection: Connection): Promise<void> {
    const requester = connection.remotePeer.toString();
    const signal = AbortSignal.timeout(60_000);
    const lp = chunkFrames(stream);
    stats.requests++;
    let uploading: string | undefined;
    try {
      const request = decodeHeader((await lp.read({ signal })).subarray(), ChunkRequest, 'chunk request');
      let reply: ChunkResponse;
      let bytes: Uint8Array | undefined;
      if (!(await store.has(request.digest))) {
        reply = { status: 'missing' };
        stats.missing++;
      } else {
        const others =
          spare && !request.force && init.seeds(request.digest)
            ? othersHolding(request.digest, requester)
            : [];
        if (others.length > 0) {
          reply = { status: 'elsewhere', peers: others };
          stats.redirected++;
        } else {
          // Noted before the upload starts, so a concurrent request for the same chunk is
          // pointed at this requester instead of being served twice.
          noteSent(request.digest, requester);
          uploading = request.digest;
          bytes = await store.get(request.digest);
          reply = bytes ? { status: 'ok', size: bytes.length } : { status: 'missing' };
          if (!bytes) {
            stats.missing++;
            forgetSent(request.digest, requester);
          }
        }
      }
      await lp.write(encodeHeader(reply), { signal });
      if (bytes) {
        await lp.write(bytes, { signal });
        stats.chunksServed++;
        stats.bytesServed += bytes.length;
      }
      await stream.close({ signal });
    } catch (err) {
      // The requester did not get it: do not point others at it.
      if (uploading) forgetSent(uploading, requester);
      stats.errors++;
      log.debug({ peer: requester, err: describeError(err) }, 'chunk request failed');
      try {
        await lp.write(
          encodeHeader({ status: 'error', message: describeError(err) } satisfies ChunkResponse),
        );
        await stream.close();
      } catch {
        stream.abort(err instanceof Error ? err : new Error(describeError(err)));
      }
    }
  }

  return {
    stats,
    async start() {
      await libp2p.handle(CHUNK_PROTOCOL, handle, {
        maxInboundStreams: init.maxInboundStreams ?? 32,
        runOnLimitedConnection: true,
        force: true,
      });
    },
    async stop() {
      await libp2p.unhandle(CHUNK_PROTOCOL);
    },
  };
}
