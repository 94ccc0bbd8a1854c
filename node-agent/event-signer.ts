import { join } from 'node:path';
import { loadOrCreatePeerKey } from '../p2p/identity.ts';
import type { NodeEvent } from '../schema/index.ts';
import { nodeIdentityFromPeerKey, signNodeEvent, type NodeIdentity } from '../signing/index.ts';
import type { EventStamp } from './journal.ts';

/** The node's identity key file: its libp2p key, created on first start (mode 0600, checked). */
export function peerKeyPath(dataDir: string): string {
  return join(dataDir, 'peer.key');
}

/** Loads (or creates) the node's identity from `<dataDir>/peer.key`, with or without the mesh. */
export async function loadNodeIdentity(dataDir: string): Promise<NodeIdentity> {
  const { key } = await loadOrCreatePeerKey(peerKeyPath(dataDir));
  return nodeIdentityFromPeerKey(key);
}

/** Numbers and signs events with the node's key; the signature covers the number. */
export function eventStamp(identity: NodeIdentity): EventStamp {
  return <E extends NodeEvent>(event: E, seq: number): E => {
    const { sig: _sig, ...unsigned } = event;
    return signNodeEvent({ ...unsigned, seq } as E, identity);
  };
}
