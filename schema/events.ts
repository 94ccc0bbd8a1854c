import { z } from 'zod';
import { ArtifactManifest } from './artifact.ts';
import { Digest, MessageId, NodeId, RolloutId, Slot, Timestamp } from './ids.ts';
import { Base64, EnrolmentCertificate, KeyId, NodeEventSignature } from './identity.ts';
import { Labels } from './labels.ts';
import { RolloutSpec } from './rollout-spec.ts';
import { TrustEvent } from './trust-events.ts';

/** Current version of every event's shape; readers accept this one. */
export const EVENT_VERSION = 1;

const envelope = {
  /** Shape version. */
  v: z.literal(EVENT_VERSION),
  /** Unique id; also the `Nats-Msg-Id` so a re-publish is de-duplicated. */
  id: MessageId,
  /** When the fact happened. */
  at: Timestamp,
};

function rolloutEvent<T extends string, P extends z.ZodRawShape>(type: T, payload: P) {
  return z.object({ ...envelope, type: z.literal(type), rolloutId: RolloutId, ...payload });
}

function nodeEvent<T extends string, P extends z.ZodRawShape>(type: T, payload: P) {
  return z.object({
    ...envelope,
    type: z.literal(type),
    nodeId: NodeId,
    ...payload,
    /**
     * The node's own event counter, signed with the event: it only grows (persisted with the
     * journal), so the control plane refuses a signed event replayed under a new Nats-Msg-Id.
     */
    seq: z.number().int().positive().optional(),
    /** The node's signature; events without a valid one never reach a workflow or a projection. */
    sig: NodeEventSignature.optional(),
  });
}

const nodeIds = z.array(NodeId);
const NodeOutcome = z.enum(['upgraded', 'fell-back', 'rejected', 'failed', 'timed-out', 'skipped']);
export type NodeOutcome = z.infer<typeof NodeOutcome>;

/** Agent states, in the order of a successful upgrade. */
export const AgentState = z.enum([
  'idle',
  'fetching',
  'verifying',
  'writing',
  'armed',
  'rebooting',
  'trial-booted',
  'health-checking',
  'committed',
  'falling-back',
]);
export type AgentState = z.infer<typeof AgentState>;

/** Why an agent refused a command. */
export const RejectReason = z.enum([
  'malformed',
  'unknown-key',
  'bad-signature',
  'expired',
  'not-yet-valid',
  'replayed',
  'wrong-node',
  'downgrade',
  'busy',
  'artifact-invalid',
  'unsupported',
  /** Signed by a control-plane key the node was told to stop trusting. */
  'revoked-key',
  /** Valid for longer than the node accepts (its maximum command lifetime). */
  'expiry-too-far',
]);
export type RejectReason = z.infer<typeof RejectReason>;

// ---- rollout events: slotflow.evt.rollout.<rolloutId>.<Type>

export const RolloutStarted = rolloutEvent('RolloutStarted', { spec: RolloutSpec });
export const ImageBuilt = rolloutEvent('ImageBuilt', { manifest: ArtifactManifest, builder: z.string() });
export const ImagePublished = rolloutEvent('ImagePublished', {
  digest: Digest,
  bucket: z.string(),
  object: z.string(),
  /** The OCI image pushed alongside (`image build --push`): its digest-pinned reference. */
  pushed: z.object({ reference: z.string().min(1), digest: Digest }).optional(),
});
/** An OCI image was turned into a slot image; the same OCI digest and format is not converted again. */
export const ImageConverted = rolloutEvent('ImageConverted', {
  /** Digest-pinned reference the image was pulled from. */
  reference: z.string().min(1),
  /** The OCI manifest digest. */
  ociDigest: Digest,
  /** The slot image's digest (published in the object store). */
  digest: Digest,
  format: z.enum(['ext4', 'squashfs']),
  /** Set when the slot image was wrapped in a RAUC bundle: for which compatible, signed by which certificate. */
  bundle: z.object({ compatible: z.string().min(1), signer: Digest }).optional(),
});
export const TargetsResolved = rolloutEvent('TargetsResolved', {
  nodeIds,
  skipped: z.array(z.object({ nodeId: NodeId, reason: z.string() })),
});
export const WaveStarted = rolloutEvent('WaveStarted', { wave: z.number().int().nonnegative(), nodeIds });
export const WaveGatePassed = rolloutEvent('WaveGatePassed', {
  wave: z.number().int().nonnegative(),
  succeeded: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
});
export const WaveGateFailed = rolloutEvent('WaveGateFailed', {
  wave: z.number().int().nonnegative(),
  succeeded: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  reason: z.string(),
});
export const WaveApproved = rolloutEvent('WaveApproved', {
  wave: z.number().int().nonnegative(),
  by: z.string(),
});
export const RolloutPaused = rolloutEvent('RolloutPaused', { reason: z.string(), by: z.string() });
export const RolloutResumed = rolloutEvent('RolloutResumed', { by: z.string() });
export const RolloutAborted = rolloutEvent('RolloutAborted', { reason: z.string(), by: z.string() });
export const NodeUpgradeFinished = rolloutEvent('NodeUpgradeFinished', {
  nodeId: NodeId,
  wave: z.number().int().nonnegative(),
  outcome: NodeOutcome,
  detail: z.string().optional(),
});
export const RolloutRolledBack = rolloutEvent('RolloutRolledBack', { nodeIds, failed: nodeIds });
export const RolloutCompleted = rolloutEvent('RolloutCompleted', {
  outcome: z.enum(['succeeded', 'failed', 'aborted', 'rolled-back']),
  upgraded: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
});

// ---- node events: slotflow.evt.node.<nodeId>.<Type>

const version = z.string().min(1).max(128);
const onRollout = { rolloutId: RolloutId.optional(), commandId: MessageId.optional() };

export const NodeRegistered = nodeEvent('NodeRegistered', {
  labels: Labels,
  version,
  digest: Digest.optional(),
  activeSlot: Slot,
  agentVersion: z.string(),
  peerId: z.string().optional(),
  /**
   * The node's enrolment certificate, the one it presents to peers: the control plane pins the
   * node to `peerId` in a signed plan only when this certificate vouches for that peer.
   */
  enrolment: EnrolmentCertificate.optional(),
  /** What the node's slot driver installs: slot image files, OCI references (Kairos), or both. */
  installs: z.array(z.enum(['file', 'oci'])).optional(),
});
export const NodeHeartbeat = nodeEvent('NodeHeartbeat', {
  version,
  digest: Digest.optional(),
  activeSlot: Slot,
  state: AgentState,
});
export const UpgradeCommandAccepted = nodeEvent('UpgradeCommandAccepted', {
  ...onRollout,
  command: z.enum(['Upgrade', 'Rollback', 'Cancel']),
});
export const UpgradeCommandRejected = nodeEvent('UpgradeCommandRejected', {
  ...onRollout,
  reason: RejectReason,
  message: z.string(),
});
export const ArtifactFetched = nodeEvent('ArtifactFetched', {
  ...onRollout,
  digest: Digest,
  bytes: z.number().int().nonnegative(),
  source: z.string(),
});
export const SlotWritten = nodeEvent('SlotWritten', { ...onRollout, slot: Slot, digest: Digest });
export const TrialBootArmed = nodeEvent('TrialBootArmed', { ...onRollout, slot: Slot });
export const NodeRebooting = nodeEvent('NodeRebooting', { ...onRollout, slot: Slot });
export const NodeBooted = nodeEvent('NodeBooted', {
  ...onRollout,
  slot: Slot,
  version,
  digest: Digest.optional(),
  trial: z.boolean(),
});
export const HealthCheckPassed = nodeEvent('HealthCheckPassed', {
  ...onRollout,
  checks: z.array(z.string()),
});
export const HealthCheckFailed = nodeEvent('HealthCheckFailed', {
  ...onRollout,
  check: z.string(),
  reason: z.string(),
});
export const UpgradeCommitted = nodeEvent('UpgradeCommitted', {
  ...onRollout,
  slot: Slot,
  version,
  digest: Digest.optional(),
});
export const NodeFellBack = nodeEvent('NodeFellBack', {
  ...onRollout,
  slot: Slot,
  version,
  digest: Digest.optional(),
  reason: z.string(),
});
export const NodeRolledBack = nodeEvent('NodeRolledBack', {
  ...onRollout,
  slot: Slot,
  version,
  digest: Digest.optional(),
});
/**
 * A node without an enrolment certificate asks to be enrolled (Mender's authorization request):
 * signed by the key it presents, so the operator accepts exactly that key.
 */
export const NodeEnrollmentRequested = nodeEvent('NodeEnrollmentRequested', {
  /** The node's raw 32-byte ed25519 public key, base64 (its libp2p identity). */
  publicKey: Base64,
  labels: Labels,
  agentVersion: z.string().optional(),
});
export const NodeModeChanged = nodeEvent('NodeModeChanged', {
  mode: z.enum(['nats', 'p2p']),
  reason: z.string(),
});

/** The node trusts one more control-plane key (announced by a TrustKey command). */
export const ControlPlaneKeyTrusted = nodeEvent('ControlPlaneKeyTrusted', {
  commandId: MessageId,
  keyId: KeyId,
  /** The key that signed the announcement. */
  announcedBy: KeyId,
});
/** The node refuses a control-plane key from now on (a RevokeKey command). */
export const ControlPlaneKeyRevoked = nodeEvent('ControlPlaneKeyRevoked', {
  commandId: MessageId,
  keyId: KeyId,
  revokedBy: KeyId,
});

/** Every rollout event. */
export const RolloutEvent = z.discriminatedUnion('type', [
  RolloutStarted,
  ImageBuilt,
  ImagePublished,
  ImageConverted,
  TargetsResolved,
  WaveStarted,
  WaveGatePassed,
  WaveGateFailed,
  WaveApproved,
  RolloutPaused,
  RolloutResumed,
  RolloutAborted,
  NodeUpgradeFinished,
  RolloutRolledBack,
  RolloutCompleted,
]);
export type RolloutEvent = z.infer<typeof RolloutEvent>;

/** Every node event. */
export const NodeEvent = z.discriminatedUnion('type', [
  NodeRegistered,
  NodeHeartbeat,
  UpgradeCommandAccepted,
  UpgradeCommandRejected,
  ArtifactFetched,
  SlotWritten,
  TrialBootArmed,
  NodeRebooting,
  NodeBooted,
  HealthCheckPassed,
  HealthCheckFailed,
  UpgradeCommitted,
  NodeFellBack,
  NodeRolledBack,
  NodeModeChanged,
  ControlPlaneKeyTrusted,
  ControlPlaneKeyRevoked,
  NodeEnrollmentRequested,
]);
export type NodeEvent = z.infer<typeof NodeEvent>;

/** Any domain event in SLOTFLOW_EVENTS. */
export const DomainEvent = z.discriminatedUnion('type', [
  ...RolloutEvent.options,
  ...NodeEvent.options,
  ...TrustEvent.options,
]);
export type DomainEvent = z.infer<typeof DomainEvent>;
export type DomainEventType = DomainEvent['type'];
/** The input shape of an event (before defaults are applied), as producers write it. */
export type DomainEventInput = z.input<typeof DomainEvent>;

/** Names of all event types, for help texts and validation. */
export const EVENT_TYPES: readonly DomainEventType[] = DomainEvent.options.map((o) => o.shape.type.value);

const NODE_EVENT_TYPES: ReadonlySet<string> = new Set(NodeEvent.options.map((o) => o.shape.type.value));

const TRUST_EVENT_TYPES: ReadonlySet<string> = new Set(TrustEvent.options.map((o) => o.shape.type.value));

/** True for events a node reports (published on the node's subject). */
export function isNodeEvent(event: DomainEvent): event is NodeEvent {
  return NODE_EVENT_TYPES.has(event.type);
}

/** True for the control plane's enrolment decisions (published on the trust subject). */
export function isTrustEvent(event: DomainEvent): event is TrustEvent {
  return TRUST_EVENT_TYPES.has(event.type);
}

/** True for events about a rollout (the ones neither a node nor the trust authority publishes). */
export function isRolloutEvent(event: DomainEvent): event is RolloutEvent {
  return !isNodeEvent(event) && !isTrustEvent(event);
}
