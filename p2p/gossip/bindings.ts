/** What is known of the node a gossip author speaks for. */
export type Vouch =
  /** A verified enrolment certificate binds the peer to this node. */
  | { readonly type: 'enrolled'; readonly nodeId: string }
  /** The peer presented no certificate, or one that does not verify or names another peer. */
  | { readonly type: 'refused'; readonly reason: string }
  /** Nobody could be asked in time (no connection, no answer): neither trusted nor blamed. */
  | { readonly type: 'unknown'; readonly reason: string };

/**
 * Who a gossip author speaks for. A peer speaks for a node only under an enrolment certificate:
 * the control plane's signature binding the node id to the peer's key. Nothing is bound on first
 * use, and a peer without a certificate speaks for no node at all.
 */
export interface PeerBindings {
  /**
   * The enrolled node `peerId` speaks for, from its verified certificate; asked of the peer
   * itself, or of `via` (the peer that forwarded its message) when it is further away.
   */
  vouch(peerId: string, via?: string): Promise<Vouch>;
  /** The peer a verified certificate binds a node to, if one was seen. */
  peerOf(nodeId: string): string | undefined;
}
