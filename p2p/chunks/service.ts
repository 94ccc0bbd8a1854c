import type { SubscriptionChangeData } from '@libp2p/gossipsub';
import type { Logger } from 'pino';
import { ChunkHave, describeIssues, type ArtifactManifest } from '../../schema/index.ts';
import { describeError } from '../errors.ts';
import type { PeerBindings } from '../gossip/bindings.ts';
import { createTopicChannel, type TopicStats, type Verdict } from '../gossip/topic.ts';
import type { P2pNode } from '../node.ts';
import { CHUNKS_TOPIC } from '../topics.ts';
import { Bitfield } from './bitfield.ts';
import { createChunkDirectory, type ChunkDirectory, type Holding } from './directory.ts';
import { fetchChunks, type FetchChunksOptions, type FetchChunksReport } from './fetcher.ts';
import { createChunkServer, type ChunkServer } from './server.ts';
import type { ChunkStore } from './store.ts';

/** Chunk exchange of one node: serving, announcing and fetching images by their manifests. */
export interface ChunkService {
  readonly store: ChunkStore;
  readonly directory: ChunkDirectory;
  readonly server: ChunkServer;
  /** Announcements over `slotflow/chunks/1`. */
  readonly announcements: TopicStats;
  /** Serves and announces what this node holds of an image (call once the image is in the store). */
  provide(manifest: ArtifactManifest): Promise<void>;
  /** Stops announcing an image (its chunks stay in the store until deleted). */
  withdraw(imageDigest: string): void;
  /** Fetches a manifest's missing chunks from peers, verified, announcing progress as it goes. */
  fetch(options: FetchChunksOptions): Promise<FetchChunksReport>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface ChunkServiceInit {
  readonly node: P2pNode;
  readonly store: ChunkStore;
  /** Re-announce held images this often (default 10 s). */
  readonly announceIntervalMs?: number;
  /** Answer `elsewhere` for chunks other peers hold (default true). */
  readonly spareUpload?: boolean;
  /** When given, chunk announcements count only from enrolled nodes. */
  readonly enrolled?: PeerBindings;
  readonly log?: Logger;
}

interface Provided {
  readonly manifest: ArtifactManifest;
  readonly bits: Bitfield;
  timer?: NodeJS.Timeout;
}

/**
 * Peers announce a bitfield per image; the directory built from them steers fetchers to the
 * peers that hold each chunk, and lets a server point askers elsewhere instead of uploading a
 * chunk again. Announcements are hints only: every chunk is verified against the manifest.
 */
export function createChunkService(init: ChunkServiceInit): ChunkService {
  const { node, store } = init;
  const log = init.log ?? node.log.child({ name: 'p2p:chunks' });
  const directory = createChunkDirectory();
  const provided = new Map<string, Provided>();
  // chunk digest -> where it appears in the images this node knows
  const places = new Map<string, { image: string; index: number }[]>();
  let periodic: NodeJS.Timeout | undefined;
  let onSubscribers: NodeJS.Timeout | undefined;

  const server = createChunkServer({
    libp2p: node.libp2p,
    store,
    spareUpload: init.spareUpload,
    log,
    holdersOf(digest) {
      const out = new Set<string>();
      for (const p of places.get(digest) ?? []) {
        for (const peer of directory.holders(p.image, p.index)) {
          if (!directory.isComplete(p.image, peer)) out.add(peer);
        }
      }
      return [...out];
    },
    seeds: (digest) =>
      (places.get(digest) ?? []).some((p) => provided.get(p.image)?.bits.complete() ?? false),
  });

  function check(data: unknown, author: string): Verdict<Holding & { image: string }> {
    const parsed = ChunkHave.safeParse(data);
    if (!parsed.success) {
      return {
        type: 'reject',
        reason: `malformed chunk announcement: ${describeIssues(parsed.error.issues, data).join('; ')}`,
      };
    }
    const have = parsed.data;
    const bits = Bitfield.fromBase64(have.bitfield, have.chunkCount);
    if (!bits) return { type: 'reject', reason: `bitfield does not fit ${have.chunkCount} chunks` };
    const mine = provided.get(have.image);
    if (mine && mine.manifest.chunks.length !== have.chunkCount) {
      return {
        type: 'reject',
        reason: `announcement for ${have.image} has ${have.chunkCount} chunks, the manifest ${mine.manifest.chunks.length}`,
      };
    }
    return {
      type: 'accept',
      value: { image: have.image, peer: author, bits, addrs: have.addrs, at: Date.now() },
    };
  }

  const channel = createTopicChannel({
    node,
    topic: CHUNKS_TOPIC,
    log,
    enrolled: init.enrolled,
    check,
    deliver: (h) => directory.update(h.image, h),
  });

  async function announce(p: Provided): Promise<void> {
    const have: ChunkHave = {
      v: 1,
      image: p.manifest.digest,
      chunkCount: p.manifest.chunks.length,
      bitfield: p.bits.toBase64(),
      addrs: node.multiaddrs().slice(0, 32),
    };
    await channel
      .publish(have)
      .catch((err: unknown) => log.debug({ err: describeError(err) }, 'announcement failed'));
  }

  function announceSoon(p: Provided, delayMs = 250): void {
    if (p.timer) return;
    p.timer = setTimeout(() => {
      p.timer = undefined;
      void announce(p);
    }, delayMs);
    p.timer.unref();
  }

  async function provide(manifest: ArtifactManifest): Promise<void> {
    let p = provided.get(manifest.digest);
    if (!p) {
      p = { manifest, bits: new Bitfield(manifest.chunks.length) };
      provided.set(manifest.digest, p);
      for (const c of manifest.chunks) {
        const list = places.get(c.digest) ?? [];
        list.push({ image: manifest.digest, index: c.index });
        places.set(c.digest, list);
      }
    }
    for (const c of manifest.chunks)
      if (!p.bits.has(c.index) && (await store.has(c.digest))) p.bits.set(c.index);
    await announce(p);
  }

  const onSubscriptionChange = (evt: CustomEvent<SubscriptionChangeData>): void => {
    if (!evt.detail.subscriptions.some((s) => s.topic === CHUNKS_TOPIC && s.subscribe)) return;
    // A new peer on the topic: tell it what we hold (batched, several peers join together).
    onSubscribers ??= setTimeout(() => {
      onSubscribers = undefined;
      for (const p of provided.values()) void announce(p);
    }, 300);
  };

  return {
    store,
    directory,
    server,
    announcements: channel.stats,
    provide,
    withdraw(image) {
      const p = provided.get(image);
      if (p?.timer) clearTimeout(p.timer);
      provided.delete(image);
    },
    async fetch(options) {
      await provide(options.manifest);
      const p = provided.get(options.manifest.digest)!;
      const report = await fetchChunks(
        {
          libp2p: node.libp2p,
          store,
          directory,
          log,
          onStored(index) {
            p.bits.set(index);
            announceSoon(p);
          },
        },
        options,
      );
      if (p.timer) clearTimeout(p.timer);
      p.timer = undefined;
      await announce(p);
      return report;
    },
    async start() {
      channel.attach();
      node.pubsub.addEventListener('subscription-change', onSubscriptionChange);
      await server.start();
      periodic ??= setInterval(() => {
        for (const p of provided.values()) void announce(p);
      }, init.announceIntervalMs ?? 10_000);
      periodic.unref();
    },
    async stop() {
      channel.detach();
      node.pubsub.removeEventListener('subscription-change', onSubscriptionChange);
      if (periodic) clearInterval(periodic);
      if (onSubscribers) clearTimeout(onSubscribers);
      periodic = undefined;
      for (const p of provided.values()) if (p.timer) clearTimeout(p.timer);
      await server.stop();
    },
  };
}
