import { z } from 'zod';
import { MessageId, NodeId, Timestamp } from './ids.ts';
import { EnrolmentCertificate, IssuerSignature, KeyId } from './identity.ts';

// The control plane's enrolment decisions (Mender's device authorization, as events). They go on
// `slotflow.evt.trust.<nodeId>.<Type>`, a subject no node may publish on, and each carries the
// control plane's signature, so even a client that could publish there cannot forge one.

const trustEvent = <T extends string, P extends z.ZodRawShape>(type: T, payload: P) =>
  z.object({
    v: z.literal(1),
    id: MessageId,
    at: Timestamp,
    type: z.literal(type),
    /** The node the decision is about. */
    nodeId: NodeId,
    /** Who decided (operator name or tool). */
    by: z.string().min(1).max(128),
    ...payload,
    /** ed25519 over the canonical encoding without `issuer`, by a control-plane key. */
    issuer: IssuerSignature,
  });

/** A node's key is enrolled: pre-authorised by the operator, or its request accepted. */
export const NodeEnrolled = trustEvent('NodeEnrolled', {
  how: z.enum(['preauthorized', 'accepted']),
  certificate: EnrolmentCertificate,
});
/** A pending enrolment request is refused. */
export const NodeEnrollmentRejected = trustEvent('NodeEnrollmentRejected', {
  reason: z.string().max(1024).optional(),
});
/** An enrolled node is no longer trusted: its events are refused from this point of the log on. */
export const NodeRevoked = trustEvent('NodeRevoked', { reason: z.string().max(1024).optional() });

/**
 * The node id trust events about the control plane itself are filed under
 * (`slotflow.evt.trust.control-plane.<Type>`); no node may be enrolled with it.
 */
export const CONTROL_PLANE_ID = 'control-plane';

/**
 * A control-plane key is retired (`slotflow keys revoke`): from this point of the log on, trust
 * decisions and certificates it signs are refused; the ones it signed before stay valid, so the
 * log replays to the same verdicts after the key is gone.
 */
export const ControlPlaneKeyRetired = z.object({
  v: z.literal(1),
  id: MessageId,
  at: Timestamp,
  type: z.literal('ControlPlaneKeyRetired'),
  nodeId: z.literal(CONTROL_PLANE_ID),
  by: z.string().min(1).max(128),
  /** The retired key; never the one that signs this event. */
  keyId: KeyId,
  issuer: IssuerSignature,
});

export type ControlPlaneKeyRetired = z.infer<typeof ControlPlaneKeyRetired>;

/** Every trust event. */
export const TrustEvent = z.discriminatedUnion('type', [
  NodeEnrolled,
  NodeEnrollmentRejected,
  NodeRevoked,
  ControlPlaneKeyRetired,
]);
export type TrustEvent = z.infer<typeof TrustEvent>;

/** Why a node event was kept from the workflows and the projection. */
export const RejectionReason = z.enum([
  'unsigned',
  'wrong-key',
  'bad-signature',
  'no-sequence',
  'replayed',
  'unknown-node',
  'pending',
  'rejected',
  'revoked',
  'bad-issuer',
  'malformed',
  // A relayed copy of an event already accepted (another relay, or its author, stored it first):
  // harmless and expected, so it is not applied again and not listed among the refusals.
  'duplicate-relay',
]);
export type RejectionReason = z.infer<typeof RejectionReason>;

/** A node event refused where events enter the control plane; `slotflow events --rejected` lists them. */
export const RejectionRecord = z.object({
  /** Position of the refused message in SLOTFLOW_EVENTS. */
  streamSeq: z.number().int().positive(),
  subject: z.string(),
  /** The event's own id, when it had one. */
  eventId: z.string().optional(),
  nodeId: z.string(),
  type: z.string(),
  reason: RejectionReason,
  message: z.string(),
  /** When the event said it happened. */
  eventAt: Timestamp.optional(),
  /** When it was refused. */
  rejectedAt: Timestamp,
  /** The component that refused it first (`event-bridge`, `projector`). */
  by: z.string(),
});
export type RejectionRecord = z.infer<typeof RejectionRecord>;
