import { z } from 'zod';
import { ImageSource } from './artifact.ts';
import { SignedCommand } from './commands.ts';
import { NodeEvent } from './events.ts';
import { Digest, NodeId, RolloutId, Timestamp } from './ids.ts';
import { EnrolmentCertificate } from './identity.ts';
import { Threshold } from './threshold.ts';

// Messages agents exchange peer to peer (libp2p gossip topics and the chunk protocol). Nothing
// here is trusted because of who sent it: commands and plans carry the control plane's signature,
// chunks are checked against the signed manifest, and events and reports count only from the
// peer an enrolment certificate (signed by the control plane) binds to their node.

/** Current version of the rollout plan's shape. */
export const PLAN_VERSION = 1;

/**
 * The upgrade every node of a plan performs: what an Upgrade command would carry. A node that
 * lost the control plane acts on it as on the command `<rolloutId>:<nodeId>:upgrade`, authorised
 * by the plan's signature.
 */
export const PlanUpgrade = z
  .object({
    image: ImageSource,
    manifestDigest: Digest,
    allowDowngrade: z.boolean().default(false),
    healthChecks: z.array(z.string()).default([]),
  })
  .strict();
export type PlanUpgrade = z.output<typeof PlanUpgrade>;

/**
 * What a site needs to finish a rollout without the control plane: the wave order, the reboot
 * concurrency and the failure gate, signed by the control plane like a command.
 */
export const RolloutPlan = z
  .object({
    v: z.literal(PLAN_VERSION),
    rolloutId: RolloutId,
    /** Digest of the image manifest the plan installs (the same one the nodes' commands carry). */
    manifestDigest: Digest,
    /** Waves in order; each an ordered list of node ids. Position in a wave decides a node's turn. */
    waves: z.array(z.array(NodeId).min(1, 'expected at least one node in a wave')).min(1),
    /** At most this many nodes hold the reboot lease (are unavailable) at once. */
    maxUnavailable: z.number().int().min(1, 'expected at least 1 node at a time'),
    /** Failures tolerated (counted over every wave so far) before later waves stop. */
    failureThreshold: Threshold,
    issuedAt: Timestamp,
    /** After this, agents ignore the plan (and stop re-gossiping it). */
    expiresAt: Timestamp,
    /** Origin of the worst-case schedule every peer computes alike (see p2p/coordination). */
    startsAt: Timestamp,
    /** Longest a node may hold the reboot lease: reboot, trial boot and health checks. */
    leaseTtlMs: z.number().int().positive(),
    /** How long after its turn comes a node may still start; later, it forfeits its turn. */
    startWindowMs: z.number().int().positive(),
    /** Clock difference between nodes the schedule tolerates. */
    clockSkewMs: z.number().int().nonnegative().default(2_000),
    /**
     * Node id to libp2p peer id, for nodes whose enrolment certificate vouches for that peer
     * (the control plane pins no other). Peers themselves bind authors to nodes by the
     * certificates they exchange (p2p/enrolment), never by first use.
     */
    peerIds: z.record(NodeId, z.string().min(1).max(128)).optional(),
    /** The rollout's index of `waves[0]` (plans are re-issued as waves start). */
    firstWave: z.number().int().nonnegative().default(0),
    /** What the nodes install; without it, the plan only coordinates reboots. */
    upgrade: PlanUpgrade.optional(),
  })
  .strict()
  .superRefine((plan, ctx) => {
    const seen = new Set<string>();
    plan.waves.forEach((wave, w) =>
      wave.forEach((nodeId, i) => {
        if (seen.has(nodeId)) {
          ctx.addIssue({
            code: 'custom',
            path: ['waves', w, i],
            message: `expected every node once, ${nodeId} appears again`,
          });
        }
        seen.add(nodeId);
      }),
    );
    if (Date.parse(plan.expiresAt) <= Date.parse(plan.issuedAt)) {
      ctx.addIssue({ code: 'custom', path: ['expiresAt'], message: 'expected a time after issuedAt' });
    }
  });
export type RolloutPlan = z.output<typeof RolloutPlan>;
export type RolloutPlanInput = z.input<typeof RolloutPlan>;

/** A rollout plan with the control plane's ed25519 signature over the canonical encoding of `plan`. */
export const SignedPlan = z.object({
  plan: RolloutPlan,
  keyId: z.string().regex(/^[0-9a-f]{16}$/, 'expected a 16-hex-digit key id'),
  signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'expected a base64 ed25519 signature (64 bytes)'),
});
export type SignedPlan = z.output<typeof SignedPlan>;

/** Topic `slotflow/commands/1`: signed commands and plans, re-gossiped by every agent. */
export const CommandGossip = z.discriminatedUnion('type', [
  z.object({ v: z.literal(1), type: z.literal('command'), signed: SignedCommand }),
  z.object({ v: z.literal(1), type: z.literal('plan'), signed: SignedPlan }),
]);
export type CommandGossip = z.output<typeof CommandGossip>;

/** Topic `slotflow/events/1`: one node event, published by the node it is about. */
export const EventGossip = z.object({ v: z.literal(1), event: NodeEvent });
export type EventGossip = z.output<typeof EventGossip>;

/** Topic `slotflow/lease/1`: a node took its reboot turn, or finished it. */
export const LeaseReport = z.discriminatedUnion('type', [
  z.object({
    v: z.literal(1),
    type: z.literal('started'),
    rolloutId: RolloutId,
    nodeId: NodeId,
    at: Timestamp,
  }),
  z.object({
    v: z.literal(1),
    type: z.literal('done'),
    rolloutId: RolloutId,
    nodeId: NodeId,
    at: Timestamp,
    /** `skipped`: the node let its turn pass without rebooting (it counts as failed at the gate). */
    outcome: z.enum(['succeeded', 'failed', 'skipped']),
  }),
]);
export type LeaseReport = z.output<typeof LeaseReport>;

/** Topic `slotflow/chunks/1`: which chunks of an image a peer holds (bit i = chunk i). */
export const ChunkHave = z.object({
  v: z.literal(1),
  image: Digest,
  chunkCount: z.number().int().nonnegative(),
  /** base64 of ceil(chunkCount / 8) bytes, most significant bit first. */
  bitfield: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64'),
  /** Where the peer can be dialled (relay addresses included), so fetchers need not know it yet. */
  addrs: z.array(z.string().min(1).max(512)).max(32),
});
export type ChunkHave = z.output<typeof ChunkHave>;

/** Protocol `/slotflow/chunk/1`, client to server: one chunk by digest. */
export const ChunkRequest = z.object({
  type: z.literal('get'),
  digest: Digest,
  /** Serve even when other peers hold the chunk (the client tried them). */
  force: z.boolean().default(false),
});
export type ChunkRequest = z.output<typeof ChunkRequest>;

/** Protocol `/slotflow/chunk/1`, server to client; `ok` is followed by one frame with the bytes. */
export const ChunkResponse = z.discriminatedUnion('status', [
  z.object({ status: z.literal('ok'), size: z.number().int().nonnegative() }),
  z.object({ status: z.literal('missing') }),
  /** The server spares its upload: these peers hold the chunk. */
  z.object({ status: z.literal('elsewhere'), peers: z.array(z.string()).min(1).max(8) }),
  z.object({ status: z.literal('error'), message: z.string() }),
]);
export type ChunkResponse = z.output<typeof ChunkResponse>;

/**
 * Protocol `/slotflow/enrolment/1`, client to server: the enrolment certificate of one peer,
 * the server's own or one it has verified (a peer relays certificates of authors further away).
 */
export const EnrolmentRequest = z.object({
  v: z.literal(1),
  /** The libp2p peer id whose certificate is asked for. */
  peerId: z.string().min(1).max(128),
});
export type EnrolmentRequest = z.output<typeof EnrolmentRequest>;

/** Protocol `/slotflow/enrolment/1`, server to client: the certificate, or none known. */
export const EnrolmentResponse = z.object({
  v: z.literal(1),
  certificate: EnrolmentCertificate.optional(),
});
export type EnrolmentResponse = z.output<typeof EnrolmentResponse>;
