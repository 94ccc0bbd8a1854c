import { join } from 'node:path';
import { loadOrCreateEd25519PeerKey } from '../p2p/peer-key-file.ts';
import type { NodeEvent } from '../schema/index.ts';
import {
  nodeIdentityFromEd25519,
  nodeIdentityFromPeerKey,
  signNodeEvent,
  type NodeIdentity,
} from '../signing/index.ts';
import type { EventStamp } from './journal.ts';

/** The node's identity key file: its libp2p key, created on first start (mode 0600, checked). */
export function peerKeyPath(dataDir: string): string {
  return join(dataDir, 'peer.key');
}

/** Loads (or creates) the node's identity from `<dataDir>/peer.key`, with or without the mesh. */
export async function loadNodeIdentity(dataDir: string): Promise<NodeIdentity> {
  const path = peerKeyPath(dataDir);
  // The usual ed25519 key file is read without libp2p; any other form goes through libp2p,
  // which accepts (or refuses, with its reason) every key it can write.
  const own = await loadOrCreateEd25519PeerKey(path);
  if (own) return nodeIdentityFromEd25519(own.seed, own.publicKey);
  const { loadOrCreatePeerKey } = await import('../p2p/identity.ts');
  return nodeIdentityFromPeerKey((await loadOrCreatePeerKey(path)).key);
}

/** Numbers and signs events with the node's key; the signature covers the number. */
export function eventStamp(identity: NodeIdentity): EventStamp {
  return <E extends NodeEvent>(event: E, seq: number): E => {
    const { sig: _sig, ...unsigned } = event;
    return signNodeEvent({ ...unsigned, seq } as E, identity);
  };
}
