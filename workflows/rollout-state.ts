import type { Target } from '../activities/index.ts';
import type { Digest, ImageSource, NodeOutcome } from '../schema/index.ts';
import type { RolloutStatusView } from './definitions.ts';

/** What an operator (or the failure policy) has asked the rollout to do next. */
export type Control = 'run' | 'pause' | 'abort' | 'rollback';

/** Everything a rollout must remember, carried across continue-as-new. */
export interface RolloutState {
  view: RolloutStatusView;
  /** Counter behind deterministic event ids (`<rolloutId>:<n>`). */
  eventCounter: number;
  image?: ImageSource | undefined;
  manifestDigest?: Digest | undefined;
  targets?: Target[] | undefined;
  waves?: string[][] | undefined;
  waveIndex: number;
  waveStarted: boolean;
  waveGatePassed: boolean;
  /** Failures already accepted by an operator's resume; the threshold judges the rest. */
  failureBaseline: number;
  /** Nodes in the order their upgrade started: compensations run newest first. */
  touched: string[];
  control: Control;
  request: { by: string; reason: string };
  approved: boolean;
}

/** State of a rollout that has not done anything yet. */
export function initialState(rolloutId: string, version: string): RolloutState {
  return {
    view: {
      rolloutId,
      status: 'starting',
      version,
      currentWave: 0,
      waves: [],
      nodes: {},
      counts: { targets: 0, upgraded: 0, failed: 0, running: 0, pending: 0, skipped: 0 },
      skipped: [],
      run: 1,
    },
    eventCounter: 0,
    waveIndex: 0,
    waveStarted: false,
    waveGatePassed: false,
    failureBaseline: 0,
    touched: [],
    control: 'run',
    request: { by: 'policy', reason: '' },
    approved: false,
  };
}

const FAILED: ReadonlySet<string> = new Set<NodeOutcome | 'rolled-back'>([
  'fell-back',
  'rejected',
  'failed',
  'timed-out',
]);

/** Recomputes the counters of the status view from its per-node states. */
export function recount(view: RolloutStatusView): void {
  const counts = { targets: 0, upgraded: 0, failed: 0, running: 0, pending: 0, skipped: view.skipped.length };
  for (const node of Object.values(view.nodes)) {
    counts.targets++;
    if (node.state === 'upgraded') counts.upgraded++;
    else if (node.state === 'running') counts.running++;
    else if (node.state === 'pending') counts.pending++;
    else if (FAILED.has(node.state)) counts.failed++;
  }
  view.counts = counts;
  for (const wave of view.waves) {
    wave.succeeded = wave.nodeIds.filter((id) => view.nodes[id]?.state === 'upgraded').length;
    wave.failed = wave.nodeIds.filter((id) => FAILED.has(view.nodes[id]?.state ?? '')).length;
  }
}

/** True once the rollout has ended, one way or another. */
export function isFinished(view: RolloutStatusView): boolean {
  return ['succeeded', 'failed', 'aborted', 'rolled-back'].includes(view.status);
}
