import type { Target } from '../activities/index.ts';
import type { Digest, ImageSource } from '../schema/index.ts';
import type { RolloutStatusView } from './definitions.ts';
import { openNodeBook, plannedNodes, type CarriedNodes } from './node-book.ts';

/** What an operator (or the failure policy) has asked the rollout to do next. */
export type Control = 'run' | 'pause' | 'abort' | 'rollback';

/** Status of one wave in the status view. */
export type WaveStatus = RolloutStatusView['waves'][number]['status'];

/** The status view's own fields; waves, nodes and counts are built from the node book on demand. */
export type RolloutHead = Pick<
  RolloutStatusView,
  | 'rolloutId'
  | 'status'
  | 'version'
  | 'imageDigest'
  | 'currentWave'
  | 'waitingFor'
  | 'pauseReason'
  | 'run'
  | 'plan'
>;

/** Shape version of the carried state. */
export const ROLLOUT_STATE_VERSION = 2;

/**
 * Everything a rollout must remember, carried across continue-as-new. Its size grows with the
 * fleet only by the node ids and a letter per node (see node-book.ts).
 */
export interface RolloutState {
  v: typeof ROLLOUT_STATE_VERSION;
  head: RolloutHead;
  /** Counter behind deterministic event ids (`<rolloutId>:<n>`). */
  eventCounter: number;
  image?: ImageSource | undefined;
  manifestDigest?: Digest | undefined;
  /** The targets in waves and their states, once resolved. */
  nodes?: CarriedNodes | undefined;
  waveStatus: WaveStatus[];
  /** Nodes the selector matched but the rollout leaves alone, grouped by reason. */
  skipped: { reason: string; nodeIds: string[] }[];
  waveIndex: number;
  waveStarted: boolean;
  waveGatePassed: boolean;
  /** Failures already accepted by an operator's resume; the threshold judges the rest. */
  failureBaseline: number;
  control: Control;
  request: { by: string; reason: string };
  approved: boolean;
}

/** The carried state of runs before the compact shape: the whole status view and the targets. */
export interface LegacyRolloutState {
  v?: undefined;
  view: RolloutStatusView;
  eventCounter: number;
  image?: ImageSource | undefined;
  manifestDigest?: Digest | undefined;
  targets?: Target[] | undefined;
  waves?: string[][] | undefined;
  waveIndex: number;
  waveStarted: boolean;
  waveGatePassed: boolean;
  failureBaseline: number;
  touched: string[];
  control: Control;
  request: { by: string; reason: string };
  approved: boolean;
}

/** State of a rollout that has not done anything yet. */
export function initialState(rolloutId: string, version: string): RolloutState {
  return {
    v: ROLLOUT_STATE_VERSION,
    head: { rolloutId, status: 'starting', version, currentWave: 0, run: 1 },
    eventCounter: 0,
    waveStatus: [],
    skipped: [],
    waveIndex: 0,
    waveStarted: false,
    waveGatePassed: false,
    failureBaseline: 0,
    control: 'run',
    request: { by: 'policy', reason: '' },
    approved: false,
  };
}

/** Groups skipped nodes by reason, keeping the order reasons first appear in. */
export function groupSkipped(
  skipped: readonly { nodeId: string; reason: string }[],
): RolloutState['skipped'] {
  const groups = new Map<string, string[]>();
  for (const { nodeId, reason } of skipped) {
    const group = groups.get(reason);
    if (group) group.push(nodeId);
    else groups.set(reason, [nodeId]);
  }
  return [...groups.entries()].map(([reason, nodeIds]) => ({ reason, nodeIds }));
}

/**
 * The carried state in the current shape. A run that continued as new from an older worker
 * carried the whole status view; it is converted once, here (the order nodes started in is
 * their order in the waves, so it needs no list of its own).
 */
export function currentState(carried: RolloutState | LegacyRolloutState): RolloutState {
  if (carried.v === ROLLOUT_STATE_VERSION) return carried;
  const { view, waves, targets } = carried;
  let nodes: CarriedNodes | undefined;
  if (waves) {
    const previous = new Map((targets ?? []).map((t) => [t.nodeId, t.version]));
    const book = openNodeBook(plannedNodes(waves, (id) => previous.get(id)));
    for (let i = 0; i < book.size; i++) {
      const node = view.nodes[book.id(i)];
      if (node) book.set(i, node.state, node.detail);
    }
    nodes = book.encode();
  }
  return {
    v: ROLLOUT_STATE_VERSION,
    head: {
      rolloutId: view.rolloutId,
      status: view.status,
      version: view.version,
      imageDigest: view.imageDigest,
      currentWave: view.currentWave,
      waitingFor: view.waitingFor,
      pauseReason: view.pauseReason,
      run: view.run,
      plan: view.plan,
    },
    nodes,
    waveStatus: view.waves.map((w) => w.status),
    skipped: groupSkipped(view.skipped),
    eventCounter: carried.eventCounter,
    image: carried.image,
    manifestDigest: carried.manifestDigest,
    waveIndex: carried.waveIndex,
    waveStarted: carried.waveStarted,
    waveGatePassed: carried.waveGatePassed,
    failureBaseline: carried.failureBaseline,
    control: carried.control,
    request: carried.request,
    approved: carried.approved,
  };
}

/** True once the rollout has ended, one way or another. */
export function isFinished(status: RolloutStatusView['status']): boolean {
  return ['succeeded', 'failed', 'aborted', 'rolled-back'].includes(status);
}
