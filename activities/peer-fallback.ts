import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { nodeKey, type NodeView } from '../projection/index.ts';
import { PLANS_STREAM, SignedPlan, planSubject } from '../schema/index.ts';

/** What the control plane knows of a node that may be upgrading peer to peer. */
export interface PeerFallback {
  /** The libp2p peer id of the node's latest registration: it can follow a plan without NATS. */
  peerId?: string | undefined;
  /** When the node was last heard from (its newest event), per the fleet projection. */
  lastSeenAt?: string | undefined;
  /** Until when the rollout's latest plan lets the node upgrade on its own (absent: no such plan). */
  planExpiresAt?: string | undefined;
}

/** Activities that tell a workflow whether a silent node may be finishing a rollout peer to peer. */
export function createPeerFallbackActivities({ kv, jsm }: { kv: KV; jsm: JetStreamManager }) {
  return {
    /**
     * Reads the node's projection entry and the rollout's latest signed plan: a plan counts
     * only while it carries the upgrade (a withdrawn one does not) and lists the node.
     */
    async checkPeerFallback({
      rolloutId,
      nodeId,
    }: {
      rolloutId: string;
      nodeId: string;
    }): Promise<PeerFallback> {
      const entry = await kv.get(nodeKey(nodeId));
      const node = entry?.operation === 'PUT' ? entry.json<NodeView>() : undefined;
      const stored = await jsm.streams.getMessage(PLANS_STREAM, { last_by_subj: planSubject(rolloutId) });
      const signed = stored ? SignedPlan.safeParse(stored.json()) : undefined;
      const plan = signed?.success ? signed.data.plan : undefined;
      const lists = plan?.upgrade !== undefined && plan.waves.some((wave) => wave.includes(nodeId));
      return {
        peerId: node?.peerId,
        lastSeenAt: node?.lastSeenAt,
        planExpiresAt: lists ? plan?.expiresAt : undefined,
      };
    },
  };
}
