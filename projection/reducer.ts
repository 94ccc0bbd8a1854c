import {
  CONTROL_PLANE_ID,
  formatWaves,
  isNodeEvent,
  isTrustEvent,
  type DomainEvent,
  type NodeEvent,
  type RejectionReason,
  type RolloutEvent,
} from '../schema/index.ts';
import type { TrustedKeys } from '../signing/index.ts';
import { applyTrust } from '../trust/reducer.ts';
import type { NodePhase, NodeView, Projection, RolloutView } from './views.ts';

const PHASE_OF: Partial<Record<NodeEvent['type'], NodePhase>> = {
  UpgradeCommandAccepted: 'accepted',
  UpgradeCommandRejected: 'rejected',
  ArtifactFetched: 'fetched',
  SlotWritten: 'written',
  TrialBootArmed: 'armed',
  NodeRebooting: 'rebooting',
  NodeBooted: 'booted',
  HealthCheckPassed: 'health-passed',
  HealthCheckFailed: 'health-failed',
  UpgradeCommitted: 'committed',
  NodeFellBack: 'fell-back',
  NodeRolledBack: 'rolled-back',
};

const STATE_OF: Partial<Record<NodeEvent['type'], NodeView['state']>> = {
  UpgradeCommandAccepted: 'fetching',
  ArtifactFetched: 'verifying',
  SlotWritten: 'armed',
  TrialBootArmed: 'armed',
  NodeRebooting: 'rebooting',
  HealthCheckFailed: 'falling-back',
  UpgradeCommitted: 'idle',
  NodeFellBack: 'idle',
  NodeRolledBack: 'idle',
};

/** Pure: the next view of one node after one of its events (undefined while unknown). */
export function reduceNode(node: NodeView | undefined, event: NodeEvent, seq: number): NodeView | undefined {
  if (event.type === 'NodeRegistered') {
    return {
      nodeId: event.nodeId,
      labels: event.labels,
      version: event.version,
      digest: event.digest,
      activeSlot: event.activeSlot,
      state: node?.state ?? 'idle',
      mode: node?.mode ?? 'nats',
      // The latest registration says whether the agent runs libp2p; the peer id itself comes
      // from the enrolment certificate (applyEvent), never from what the node announces.
      peerId: undefined,
      installs: event.installs,
      registeredAt: node?.registeredAt ?? event.at,
      lastSeenAt: event.at,
      previousVersion: node?.previousVersion,
      rollout: node?.rollout,
      seq,
    };
  }
  // Events from a node that never registered are kept in the log but not projected.
  if (!node) return undefined;
  const next: NodeView = {
    ...node,
    lastSeenAt: event.at > node.lastSeenAt ? event.at : node.lastSeenAt,
    seq,
  };
  const state = STATE_OF[event.type];
  if (state) next.state = state;
  const phase = PHASE_OF[event.type];
  const rolloutId = 'rolloutId' in event ? event.rolloutId : undefined;
  if (phase && rolloutId) {
    next.rollout = { rolloutId, phase, reason: 'reason' in event ? String(event.reason) : undefined };
  }
  switch (event.type) {
    case 'NodeHeartbeat':
      next.version = event.version;
      next.digest = event.digest;
      next.activeSlot = event.activeSlot;
      next.state = event.state;
      break;
    case 'NodeBooted':
      next.activeSlot = event.slot;
      next.state = event.trial ? 'trial-booted' : 'idle';
      break;
    case 'HealthCheckPassed':
      next.state = 'health-checking';
      break;
    case 'UpgradeCommitted':
      if (event.version !== node.version) next.previousVersion = node.version;
      next.version = event.version;
      next.digest = event.digest;
      next.activeSlot = event.slot;
      break;
    case 'NodeFellBack':
    case 'NodeRolledBack':
      next.version = event.version;
      next.digest = event.digest;
      next.activeSlot = event.slot;
      break;
    case 'NodeModeChanged':
      next.mode = event.mode;
      break;
    default:
      break;
  }
  return next;
}

/** Pure: the next view of one rollout after one of its events. */
export function reduceRollout(
  rollout: RolloutView | undefined,
  event: RolloutEvent,
  seq: number,
): RolloutView | undefined {
  if (event.type === 'RolloutStarted') {
    const { spec } = event;
    return {
      rolloutId: event.rolloutId,
      status: 'running',
      version: spec.version,
      imageDigest: spec.image.type === 'published' ? spec.image.digest : undefined,
      waves: [],
      policy: {
        waves: formatWaves(spec.waves),
        maxUnavailable: spec.maxUnavailable,
        onFailure: spec.onFailure,
        approveWaves: spec.approveWaves,
      },
      targets: [],
      nodes: {},
      upgraded: 0,
      failed: 0,
      startedAt: event.at,
      updatedAt: event.at,
      seq,
    };
  }
  if (!rollout) return undefined;
  const next: RolloutView = { ...rollout, updatedAt: event.at, seq };
  switch (event.type) {
    case 'ImageBuilt':
      next.imageDigest = event.manifest.digest;
      break;
    case 'ImagePublished':
      next.imageDigest = event.digest;
      break;
    case 'ImageConverted':
      next.imageDigest = event.digest;
      next.converted = {
        reference: event.reference,
        ociDigest: event.ociDigest,
        format: event.format,
        ...(event.bundle ? { bundle: event.bundle } : {}),
      };
      break;
    case 'TargetsResolved':
      next.targets = [...event.nodeIds];
      break;
    case 'WaveStarted': {
      next.waves = [
        ...rollout.waves.filter((w) => w.index !== event.wave),
        {
          index: event.wave,
          nodeIds: [...event.nodeIds],
          status: 'running' as const,
          succeeded: 0,
          failed: 0,
        },
      ].sort((a, b) => a.index - b.index);
      next.nodes = { ...rollout.nodes };
      for (const id of event.nodeIds) next.nodes[id] = { wave: event.wave, phase: 'pending' };
      break;
    }
    case 'WaveGatePassed':
    case 'WaveGateFailed':
      next.waves = rollout.waves.map((w) =>
        w.index === event.wave
          ? {
              ...w,
              status: event.type === 'WaveGatePassed' ? 'passed' : 'failed',
              succeeded: event.succeeded,
              failed: event.failed,
            }
          : w,
      );
      break;
    case 'WaveApproved':
      next.waves = rollout.waves.map((w) => (w.index === event.wave ? { ...w, status: 'approved' } : w));
      break;
    case 'RolloutPaused':
      next.status = 'paused';
      next.pauseReason = event.reason;
      break;
    case 'RolloutResumed':
      next.status = 'running';
      next.pauseReason = undefined;
      break;
    case 'RolloutAborted':
      next.status = 'aborted';
      break;
    case 'NodeUpgradeFinished': {
      const prior = rollout.nodes[event.nodeId];
      next.nodes = {
        ...rollout.nodes,
        [event.nodeId]: {
          wave: event.wave,
          phase: prior?.phase ?? 'pending',
          outcome: event.outcome,
          detail: event.detail,
        },
      };
      const outcomes = Object.values(next.nodes).map((n) => n.outcome);
      next.upgraded = outcomes.filter((o) => o === 'upgraded').length;
      next.failed = outcomes.filter((o) => o !== undefined && o !== 'upgraded' && o !== 'skipped').length;
      break;
    }
    case 'RolloutRolledBack':
      next.status = 'rolled-back';
      break;
    case 'RolloutCompleted':
      next.status = event.outcome;
      next.finishedAt = event.at;
      break;
  }
  return next;
}

/** Pure: a rollout's per-node phase after one of that node's events on its behalf. */
function reduceRolloutNode(rollout: RolloutView, event: NodeEvent, seq: number): RolloutView {
  const phase = PHASE_OF[event.type];
  const prior = rollout.nodes[event.nodeId];
  if (!phase || !prior) return rollout;
  return { ...rollout, seq, nodes: { ...rollout.nodes, [event.nodeId]: { ...prior, phase } } };
}

/** Keys of the projection entries one event changed, for the projector to persist. */
export interface Changes {
  nodes: string[];
  rollouts: string[];
  /** Node ids whose trust entry changed (CONTROL_PLANE_ID: the retired control-plane keys). */
  trust: string[];
}

/** A node event the trust reducer refused (kept out of the projection). */
export interface Refusal {
  readonly seq: number;
  readonly event: DomainEvent;
  /** The subject it was stored under, when the reader knows it. */
  readonly subject?: string | undefined;
  readonly reason: RejectionReason;
  readonly message: string;
}

/** What the projection trusts: the control plane's keys, and who hears about refusals. */
export interface ProjectionTrust {
  readonly trustedKeys: TrustedKeys;
  readonly onRefused?: (refusal: Refusal) => void;
}

/**
 * Applies one logged event to the projection in place and says what changed. Entity updates go
 * through the pure reducers above; events at or below `lastSeq` are ignored, so re-delivery is harmless.
 * `subject` is where the event was stored (a node's event may be a peer's relay of it; see applyTrust).
 */
export function applyEvent(
  projection: Projection,
  seq: number,
  event: DomainEvent,
  trust: ProjectionTrust,
  subject?: string,
): Changes {
  const changes: Changes = { nodes: [], rollouts: [], trust: [] };
  if (seq <= projection.lastSeq) return changes;
  projection.lastSeq = seq;
  const verdict = applyTrust(projection.trust, seq, event, trust.trustedKeys, subject);
  if (!verdict.ok) {
    trust.onRefused?.({ seq, event, subject, reason: verdict.reason, message: verdict.message });
    return changes;
  }
  if (event.type === 'ControlPlaneKeyRetired') {
    if (verdict.changed) changes.trust.push(CONTROL_PLANE_ID);
    return changes;
  }
  const nodeId = 'nodeId' in event ? event.nodeId : undefined;
  if (nodeId && (isNodeEvent(event) || isTrustEvent(event))) {
    const entry = projection.trust.nodes.get(nodeId);
    // An accepted node event moved the node's replay window.
    const moved = isNodeEvent(event) && event.type !== 'NodeEnrollmentRequested';
    if (entry && (verdict.changed || moved)) {
      entry.appliedSeq = seq;
      changes.trust.push(nodeId);
    }
  }
  if (isTrustEvent(event)) {
    const node = projection.nodes.get(event.nodeId);
    const entry = projection.trust.nodes.get(event.nodeId);
    if (node && entry) {
      projection.nodes.set(event.nodeId, {
        ...node,
        enrolment: entry.status,
        peerId: node.peerId === undefined ? undefined : entry.peerId,
        seq,
      });
      changes.nodes.push(event.nodeId);
    }
  } else if (isNodeEvent(event)) {
    if (event.type === 'NodeEnrollmentRequested') return changes;
    const prior = projection.nodes.get(event.nodeId);
    // An entity stored after the last saved sequence already holds this event (crash between writes).
    const node = prior && prior.seq >= seq ? undefined : reduceNode(prior, event, seq);
    if (node) {
      if (event.type === 'NodeRegistered') {
        const entry = projection.trust.nodes.get(event.nodeId);
        node.enrolment = entry?.status;
        node.peerId = event.peerId !== undefined ? entry?.peerId : undefined;
      }
      projection.nodes.set(node.nodeId, node);
      changes.nodes.push(node.nodeId);
    }
    const rolloutId = 'rolloutId' in event ? event.rolloutId : undefined;
    const rollout = rolloutId ? projection.rollouts.get(rolloutId) : undefined;
    if (rollout && rollout.seq < seq) {
      const next = reduceRolloutNode(rollout, event, seq);
      if (next !== rollout) {
        projection.rollouts.set(next.rolloutId, next);
        changes.rollouts.push(next.rolloutId);
      }
    }
  } else {
    const prior = projection.rollouts.get(event.rolloutId);
    const rollout = prior && prior.seq >= seq ? undefined : reduceRollout(prior, event, seq);
    if (rollout) {
      projection.rollouts.set(rollout.rolloutId, rollout);
      changes.rollouts.push(rollout.rolloutId);
    }
  }
  return changes;
}
