// The trust gate's checkpoint: what the gate knows of every node's identity at one position of
// SLOTFLOW_EVENTS, signed by a control-plane key. Stored in TRUST_CHECKPOINT_BUCKET as a head
// (this schema, signed) and gzip parts (the body) the head names by digest.
import { z } from 'zod';
import { Base64, EnrolmentCertificate, IssuerSignature, KeyId } from './identity.ts';
import { NodeId, Timestamp } from './ids.ts';
import { Labels } from './labels.ts';
import { RejectionReason } from './trust-events.ts';

/** Format version of the checkpoint; a head with another one is ignored (full replay). */
export const TRUST_CHECKPOINT_VERSION = 2;

/** One node's trust record as the gate holds it (trust/reducer.ts NodeTrust). */
export const NodeTrustRecord = z.object({
  nodeId: NodeId,
  status: z.enum(['pending', 'enrolled', 'rejected', 'revoked']),
  publicKey: Base64,
  keyId: KeyId,
  peerId: z.string().min(1).max(128),
  labels: Labels.optional(),
  how: z.enum(['preauthorized', 'accepted']).optional(),
  certificate: EnrolmentCertificate.optional(),
  requestedAt: Timestamp.optional(),
  since: Timestamp,
  sinceSeq: z.number().int().nonnegative(),
  window: z.object({
    top: z.number().int().nonnegative(),
    seen: z.string().regex(/^[0-9a-f]+$/, 'expected a hex bit set'),
  }),
  appliedSeq: z.number().int().nonnegative().optional(),
});

/** The checkpoint's body: every node's record, the retired keys and the refusals the bridge may still ask about. */
export const TrustCheckpointBody = z.object({
  nodes: z.array(NodeTrustRecord),
  refused: z.array(
    z.object({ seq: z.number().int().positive(), reason: RejectionReason, message: z.string() }),
  ),
  /** Control-plane keys the log retired: key id → stream sequence of its ControlPlaneKeyRetired. */
  retiredKeys: z.record(KeyId, z.number().int().positive()),
});
export type TrustCheckpointBody = z.infer<typeof TrustCheckpointBody>;

/** The checkpoint's signed head. */
export const TrustCheckpointHead = z.object({
  v: z.literal(TRUST_CHECKPOINT_VERSION),
  /** The events stream it was taken from: its name and creation time (a recreated stream restarts). */
  stream: z.object({ name: z.string().min(1), created: z.string().min(1) }),
  /** Last stream sequence applied; reading resumes after it. */
  seq: z.number().int().nonnegative(),
  /** The control-plane keys trusted when it was taken; another set gives other verdicts. */
  trustedKeyIds: z.array(KeyId),
  /** The body, gzip-compressed, split into this many KV values (`part.<seq>.<i>`). */
  parts: z.number().int().positive(),
  bytes: z.number().int().nonnegative(),
  digest: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex digits>'),
  nodes: z.number().int().nonnegative(),
  writtenAt: Timestamp,
  issuer: IssuerSignature,
});
export type TrustCheckpointHead = z.infer<typeof TrustCheckpointHead>;
