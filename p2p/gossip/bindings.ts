/** Answers whether a peer may speak for a node id. */
export interface PeerBindings {
  /**
   * True when `peerId` may speak for `nodeId`: it is the peer pinned for the node (by a signed
   * plan), or no peer is pinned and this is the first peer seen speaking for it (trust on first
   * use; the binding then sticks for this process).
   */
  claim(nodeId: string, peerId: string): boolean;
  /** Pins nodes to peers (from a verified plan's `peerIds`); pins replace first-use bindings. */
  pin(peers: Readonly<Record<string, string>>): void;
  /** The peer bound to a node, if any. */
  peerOf(nodeId: string): string | undefined;
}

/**
 * Node id to peer id bindings. A node's libp2p identity is persistent, so a second peer claiming
 * the same node id is an impostor (or a re-installed node, which the control plane re-pins).
 */
export function createPeerBindings(): PeerBindings {
  const pinned = new Map<string, string>();
  const firstUse = new Map<string, string>();
  return {
    claim(nodeId, peerId) {
      const pin = pinned.get(nodeId);
      if (pin !== undefined) return pin === peerId;
      const bound = firstUse.get(nodeId);
      if (bound !== undefined) return bound === peerId;
      firstUse.set(nodeId, peerId);
      return true;
    },
    pin(peers) {
      for (const [nodeId, peerId] of Object.entries(peers)) {
        pinned.set(nodeId, peerId);
        firstUse.delete(nodeId);
      }
    },
    peerOf: (nodeId) => pinned.get(nodeId) ?? firstUse.get(nodeId),
  };
}
