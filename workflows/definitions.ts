import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { NodeEvent, NodeOutcome } from '../schema/index.ts';

// Signals, updates, queries and search attributes, defined once and shared by workflows and clients.

/** Task queue of the slotflow worker. */
export const TASK_QUEUE = 'slotflow';

export const RolloutIdKey = defineSearchAttributeKey('RolloutId', SearchAttributeType.KEYWORD);
export const NodeIdKey = defineSearchAttributeKey('NodeId', SearchAttributeType.KEYWORD);
export const ImageDigestKey = defineSearchAttributeKey('ImageDigest', SearchAttributeType.KEYWORD);
export const WaveKey = defineSearchAttributeKey('Wave', SearchAttributeType.INT);

/** Workflow id of a rollout. */
export function rolloutWorkflowId(rolloutId: string): string {
  return `rollout/${rolloutId}`;
}

/** Workflow id of one node's part in a rollout (upgrade) or its compensation (rollback). */
export function nodeWorkflowId(
  rolloutId: string,
  nodeId: string,
  kind: 'upgrade' | 'rollback' = 'upgrade',
): string {
  return kind === 'upgrade' ? `node/${rolloutId}/${nodeId}` : `node/${rolloutId}/${nodeId}/rollback`;
}

/** Command id of a node step; also tells the event bridge which workflow to signal. */
export function commandIdFor(
  rolloutId: string,
  nodeId: string,
  kind: 'upgrade' | 'rollback' | 'cancel',
): string {
  return `${rolloutId}:${nodeId}:${kind}`;
}

/** Parses a command id back into its parts (undefined for ids slotflow did not make). */
export function parseCommandId(
  commandId: string,
): { rolloutId: string; nodeId: string; kind: 'upgrade' | 'rollback' | 'cancel' } | undefined {
  const m = /^([A-Za-z0-9_-]+):([A-Za-z0-9_-]+):(upgrade|rollback|cancel)$/.exec(commandId);
  return m
    ? { rolloutId: m[1] as string, nodeId: m[2] as string, kind: m[3] as 'upgrade' | 'rollback' | 'cancel' }
    : undefined;
}

/**
 * Node events reach node workflows as signals named after the event type, so the workflow's
 * history in the Temporal UI reads like the node's own log: SlotWritten, NodeBooted, ...
 */
export const NODE_SIGNAL_TYPES = [
  'UpgradeCommandAccepted',
  'UpgradeCommandRejected',
  'ArtifactFetched',
  'SlotWritten',
  'TrialBootArmed',
  'NodeRebooting',
  'NodeBooted',
  'HealthCheckPassed',
  'HealthCheckFailed',
  'UpgradeCommitted',
  'NodeFellBack',
  'NodeRolledBack',
] as const satisfies readonly NodeEvent['type'][];
export type NodeSignalType = (typeof NODE_SIGNAL_TYPES)[number];

/** The signal carrying one node event of the given type. */
export function nodeEventSignal(type: NodeSignalType) {
  return defineSignal<[NodeEvent]>(type);
}

/** Where a rollout stands, as the `status` query reports it. */
export interface RolloutStatusView {
  rolloutId: string;
  status:
    | 'starting'
    | 'building'
    | 'running'
    | 'paused'
    | 'awaiting-approval'
    | 'soaking'
    | 'rolling-back'
    | 'succeeded'
    | 'failed'
    | 'aborted'
    | 'rolled-back';
  version: string;
  imageDigest?: string | undefined;
  currentWave: number;
  waves: {
    index: number;
    nodeIds: string[];
    status: 'pending' | 'running' | 'passed' | 'failed';
    succeeded: number;
    failed: number;
  }[];
  nodes: Record<
    string,
    { wave: number; state: 'pending' | 'running' | NodeOutcome | 'rolled-back'; detail?: string | undefined }
  >;
  counts: {
    targets: number;
    upgraded: number;
    failed: number;
    running: number;
    pending: number;
    skipped: number;
  };
  skipped: { nodeId: string; reason: string }[];
  waitingFor?: 'approval' | 'resume' | undefined;
  pauseReason?: string | undefined;
  /** Runs of this rollout (continue-as-new), starting at 1. */
  run: number;
  /** The latest signed plan a site follows if it loses the control plane (none before the first wave). */
  plan?: FallbackPlanView | undefined;
}

/** What the latest signed rollout plan lets a cut-off site do. */
export interface FallbackPlanView {
  /** The rollout's index of the plan's first wave. */
  firstWave: number;
  waves: number;
  nodes: number;
  issuedAt: string;
  expiresAt: string;
  /** Published without the upgrade (paused, aborted or rolling back): a site starts nothing. */
  withdrawn: boolean;
}

/** Who asks, and why; recorded in the events. */
export interface OperatorRequest {
  by?: string;
  reason?: string;
}

export const statusQuery = defineQuery<RolloutStatusView>('status');
export const pauseUpdate = defineUpdate<RolloutStatusView, [OperatorRequest]>('pause');
export const resumeUpdate = defineUpdate<RolloutStatusView, [OperatorRequest]>('resume');
export const abortUpdate = defineUpdate<RolloutStatusView, [OperatorRequest]>('abort');
export const approveUpdate = defineUpdate<RolloutStatusView, [OperatorRequest]>('approve');
export const rollbackUpdate = defineUpdate<RolloutStatusView, [OperatorRequest]>('rollback');

/** Progress of one node workflow. */
export interface NodeProgressView {
  nodeId: string;
  phase: string;
  events: string[];
  outcome?: string | undefined;
}
export const nodeProgressQuery = defineQuery<NodeProgressView>('progress');
