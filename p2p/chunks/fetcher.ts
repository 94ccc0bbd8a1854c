import type { Libp2p } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { Logger } from 'pino';
import type { ArtifactManifest } from '../../schema/index.ts';
import { ChunkFetchError, ChunkIntegrityError, describeError } from '../errors.ts';
import type { ChunkDirectory } from './directory.ts';
import { requestChunk } from './protocol.ts';
import type { ChunkStore } from './store.ts';

/** How to fetch one image's chunks from peers. */
export interface FetchChunksOptions {
  readonly manifest: ArtifactManifest;
  readonly signal?: AbortSignal;
  /** Give up (ChunkFetchError) when chunks are still missing at this time (ms since epoch). */
  readonly deadline?: number;
  /** Chunk requests in flight at once, over all peers (default 8). */
  readonly concurrency?: number;
  /** Chunk requests in flight to one peer (default 4). */
  readonly perPeer?: number;
  /** One request's time limit (default 30 s). */
  readonly requestTimeoutMs?: number;
  /** Called after each verified chunk is stored. */
  readonly onProgress?: (held: number, total: number) => void;
}

/** What a fetch did. */
export interface FetchChunksReport {
  readonly chunks: number;
  /** Chunks that were already in the store. */
  readonly alreadyHeld: number;
  readonly fetched: number;
  readonly bytes: number;
  /** Verified chunks per serving peer. */
  readonly byPeer: Readonly<Record<string, number>>;
  /** Peers that sent bytes not matching the manifest (dropped for the rest of the fetch). */
  readonly corruptPeers: readonly string[];
  /** Requests that did not yield a chunk, by why: the peer lacked it, pointed elsewhere, or failed. */
  readonly retries: { readonly missing: number; readonly redirected: number; readonly failed: number };
}

export interface FetcherDeps {
  readonly libp2p: Libp2p;
  readonly store: ChunkStore;
  readonly directory: ChunkDirectory;
  /** A verified chunk was stored (the service announces it). */
  readonly onStored: (index: number) => void;
  readonly log: Logger;
}

const MISSING_BACKOFF_MS = 1_500;
/** Once a chunk has been pointed elsewhere for this long without success, requests insist. */
const FORCE_AFTER_MS = 20_000;
/** Pause after an `elsewhere` answer: the peers named are announcing the chunk about now. */
const REDIRECT_PAUSE_MS = 250;
const SCAN_LIMIT = 1_024;

function shuffled(n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/**
 * Downloads every chunk of a manifest from the peers that announced them, several at once.
 * Scheduling: rarest chunk first (fewest holders), and for each chunk the least-busy peer that
 * holds it, partial holders before complete ones, so fetchers feed each other and seeds are
 * asked only for what no one else has. Each chunk's sha256 is checked against the manifest
 * before it is stored; a peer that sends wrong bytes is dropped and the chunk is fetched from
 * another. A missing chunk or failed request moves on to another holder.
 */
export async function fetchChunks(
  deps: FetcherDeps,
  options: FetchChunksOptions,
): Promise<FetchChunksReport> {
  const { libp2p, store, directory, log } = deps;
  const { manifest } = options;
  const image = manifest.digest;
  const total = manifest.chunks.length;
  const self = libp2p.peerId.toString();
  const concurrency = options.concurrency ?? 8;
  const perPeerMax = options.perPeer ?? 4;
  const timeoutMs = options.requestTimeoutMs ?? 30_000;

  const state = new Array<'missing' | 'inflight' | 'have'>(total).fill('missing');
  const notBefore = new Array<number>(total).fill(0);
  const redirectedSince = new Array<number>(total).fill(0);
  const missingFrom = new Map<number, Map<string, number>>();
  const bad = new Set<string>();
  const downUntil = new Map<string, number>();
  const failures = new Map<string, number>();
  const inflightPer = new Map<string, number>();
  const byPeer: Record<string, number> = {};
  const known = new Set<string>();
  let inflight = 0;
  let held = 0;
  let alreadyHeld = 0;
  let fetched = 0;
  let bytes = 0;
  const retries = { missing: 0, redirected: 0, failed: 0 };

  for (const c of manifest.chunks) {
    if (await store.has(c.digest)) {
      state[c.index] = 'have';
      held++;
      alreadyHeld++;
    }
  }
  const order = shuffled(total);
  let cursor = 0;

  let wake: (() => void) | undefined;
  const poke = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const unsubscribe = directory.onChange(poke);
  options.signal?.addEventListener('abort', poke, { once: true });

  function candidates(index: number, now: number): string[] {
    const peers = directory.holders(image, index);
    const missed = missingFrom.get(index);
    const out: string[] = [];
    for (const p of peers) {
      if (p === self || bad.has(p)) continue;
      if ((downUntil.get(p) ?? 0) > now) continue;
      const at = missed?.get(p);
      if (at !== undefined && now - at < MISSING_BACKOFF_MS) continue;
      out.push(p);
    }
    return out;
  }

  function choosePeer(cands: string[]): string | undefined {
    let best: string | undefined;
    let bestKey = Infinity;
    for (const p of cands) {
      const load = inflightPer.get(p) ?? 0;
      if (load >= perPeerMax) continue;
      // Partial holders first: they are fetchers too, and sparing complete ones (seeds) is the point.
      const key = (directory.isComplete(image, p) ? 1000 : 0) + load * 10 + Math.random();
      if (key < bestKey) {
        bestKey = key;
        best = p;
      }
    }
    return best;
  }

  function pickNext(now: number): { index: number; peer: string } | undefined {
    let best: { index: number; peer: string; score: number } | undefined;
    let scanned = 0;
    for (let k = 0; k < total && scanned < SCAN_LIMIT; k++) {
      const index = order[(cursor + k) % total]!;
      if (state[index] !== 'missing' || notBefore[index]! > now) continue;
      scanned++;
      const cands = candidates(index, now);
      if (cands.length === 0) continue;
      const peer = choosePeer(cands);
      if (peer === undefined) continue;
      if (!best || cands.length < best.score) best = { index, peer, score: cands.length };
      if (best.score === 1) break;
    }
    if (best) cursor = (cursor + 1) % Math.max(total, 1);
    return best;
  }

  async function ensureAddresses(peer: string): Promise<void> {
    if (known.has(peer)) return;
    known.add(peer);
    const addrs = directory.addrsOf(peer);
    if (addrs.length === 0) return;
    const id = peerIdFromString(peer);
    if (libp2p.getConnections(id).length > 0) return;
    try {
      await libp2p.peerStore.merge(id, { multiaddrs: addrs.map((a) => multiaddr(a)) });
    } catch (err) {
      log.debug({ peer, err: describeError(err) }, 'could not record announced addresses');
    }
  }

  async function fetchOne(index: number, peer: string): Promise<void> {
    const chunk = manifest.chunks[index]!;
    const force = redirectedSince[index]! > 0 && Date.now() - redirectedSince[index]! >= FORCE_AFTER_MS;
    try {
      await ensureAddresses(peer);
      const signal = options.signal
        ? AbortSignal.any([options.signal, AbortSignal.timeout(timeoutMs)])
        : AbortSignal.timeout(timeoutMs);
      const reply = await requestChunk(
        libp2p,
        peerIdFromString(peer),
        { type: 'get', digest: chunk.digest, force },
        signal,
      );
      failures.delete(peer);
      if (reply.status === 'ok') {
        try {
          if (reply.bytes.length !== chunk.size) {
            throw new ChunkIntegrityError(
              `chunk ${index} has ${reply.bytes.length} bytes, the manifest says ${chunk.size}`,
            );
          }
          // The store hashes what it stores and refuses bytes that do not match the digest the
          // manifest names: that is this chunk's verification (no second hash here).
          await store.put(chunk.digest, reply.bytes);
        } catch (err) {
          if (!(err instanceof ChunkIntegrityError)) throw err;
          retries.failed++;
          bad.add(peer);
          directory.removePeer(peer);
          log.warn(
            { peer, chunk: index, expected: chunk.digest, err: err.message },
            'peer sent a chunk that does not match the manifest; dropping the peer and fetching elsewhere',
          );
          state[index] = 'missing';
          return;
        }
        state[index] = 'have';
        held++;
        fetched++;
        bytes += chunk.size;
        byPeer[peer] = (byPeer[peer] ?? 0) + 1;
        deps.onStored(index);
        options.onProgress?.(held, total);
        return;
      }
      state[index] = 'missing';
      if (reply.status === 'missing') {
        retries.missing++;
        directory.forget(image, peer, index);
        let m = missingFrom.get(index);
        if (!m) missingFrom.set(index, (m = new Map()));
        m.set(peer, Date.now());
      } else {
        // The peers named either announced the chunk (the directory steers us there next) or
        // were just sent it and will announce it shortly; insist after a few rounds.
        retries.redirected++;
        const now = Date.now();
        if (redirectedSince[index] === 0) redirectedSince[index] = now;
        if (reply.peers.every((p) => bad.has(p) || (downUntil.get(p) ?? 0) > now)) {
          // Pointed only at peers we cannot use: insist right away.
          redirectedSince[index] = now - FORCE_AFTER_MS;
        } else {
          notBefore[index] = now + REDIRECT_PAUSE_MS;
        }
      }
    } catch (err) {
      retries.failed++;
      state[index] = 'missing';
      const n = (failures.get(peer) ?? 0) + 1;
      failures.set(peer, n);
      downUntil.set(peer, Date.now() + Math.min(500 * 2 ** n, 15_000));
      log.debug({ peer, chunk: index, err: describeError(err) }, 'chunk request failed; trying another peer');
    }
  }

  try {
    while (held < total) {
      if (options.signal?.aborted) throw options.signal.reason;
      const now = Date.now();
      if (options.deadline !== undefined && now > options.deadline) {
        const missing = state.flatMap((s, i) => (s === 'have' ? [] : [i]));
        log.warn(
          {
            image,
            missing: missing.slice(0, 16).map((i) => ({
              chunk: i,
              state: state[i],
              holders: directory.holders(image, i),
              candidates: candidates(i, now),
            })),
            bad: [...bad],
            down: [...downUntil].filter(([, t]) => t > now).map(([p]) => p),
          },
          'fetch deadline passed',
        );
        throw new ChunkFetchError(
          `image ${image}: ${missing.length} of ${total} chunks still missing at the deadline; no reachable peer holds them (check that a seed announced the image)`,
          missing,
        );
      }
      while (inflight < concurrency) {
        const next = pickNext(now);
        if (!next) break;
        state[next.index] = 'inflight';
        inflight++;
        inflightPer.set(next.peer, (inflightPer.get(next.peer) ?? 0) + 1);
        void fetchOne(next.index, next.peer).finally(() => {
          inflight--;
          inflightPer.set(next.peer, (inflightPer.get(next.peer) ?? 1) - 1);
          poke();
        });
      }
      if (held >= total) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(poke, 50).unref();
      });
    }
  } finally {
    unsubscribe();
    options.signal?.removeEventListener('abort', poke);
  }
  return { chunks: total, alreadyHeld, fetched, bytes, byPeer, corruptPeers: [...bad], retries };
}
