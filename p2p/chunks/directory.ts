import type { Bitfield } from './bitfield.ts';

/** What one peer said it holds of one image. */
export interface Holding {
  readonly peer: string;
  readonly bits: Bitfield;
  readonly addrs: readonly string[];
  /** When the announcement arrived (ms since epoch). */
  readonly at: number;
}

/** Who holds which chunks of which image, from peers' announcements. */
export interface ChunkDirectory {
  /** Records an announcement (replaces the peer's previous one for that image). */
  update(image: string, holding: Holding): void;
  /** Peers that announced chunk `index` of `image`. */
  holders(image: string, index: number): string[];
  /** True when the peer announced every chunk of the image. */
  isComplete(image: string, peer: string): boolean;
  /** The addresses a peer announced (any image). */
  addrsOf(peer: string): readonly string[];
  /** Drops one chunk from a peer's holding (it answered that it does not have it). */
  forget(image: string, peer: string, index: number): void;
  /** Drops a peer entirely (it left, or served bad bytes). */
  removePeer(peer: string): void;
  /** Calls the listener after every update; returns the unsubscribe. */
  onChange(listener: () => void): () => void;
}

/** In-memory directory; announcements are repeated by their peers, so nothing needs persisting. */
export function createChunkDirectory(): ChunkDirectory {
  const images = new Map<string, Map<string, Holding & { complete: boolean }>>();
  const addrs = new Map<string, readonly string[]>();
  const listeners = new Set<() => void>();
  const changed = () => {
    for (const l of listeners) l();
  };
  return {
    update(image, holding) {
      let peers = images.get(image);
      if (!peers) images.set(image, (peers = new Map()));
      peers.set(holding.peer, { ...holding, complete: holding.bits.complete() });
      if (holding.addrs.length > 0) addrs.set(holding.peer, holding.addrs);
      changed();
    },
    holders(image, index) {
      const out: string[] = [];
      for (const h of images.get(image)?.values() ?? []) if (h.bits.has(index)) out.push(h.peer);
      return out;
    },
    isComplete: (image, peer) => images.get(image)?.get(peer)?.complete ?? false,
    addrsOf: (peer) => addrs.get(peer) ?? [],
    forget(image, peer, index) {
      const h = images.get(image)?.get(peer);
      if (!h) return;
      h.bits.clear(index);
      h.complete = false;
    },
    removePeer(peer) {
      for (const peers of images.values()) peers.delete(peer);
      addrs.delete(peer);
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
