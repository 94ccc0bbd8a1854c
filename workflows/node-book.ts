import type { NodeOutcome } from '../schema/index.ts';
import type { RolloutStatusView } from './definitions.ts';

// A rollout's targets and where each stands, kept small enough to carry across continue-as-new
// at fleet scale: node ids once, one letter per node, details and prior versions grouped. The
// counters the status view and the failure gate read are kept up to date on every change, so
// a node's result costs the same whatever the fleet's size.

/** Where one node of a rollout stands. */
export type NodeState = RolloutStatusView['nodes'][string]['state'];

/** One letter per state, as carried. */
const CODE_OF = {
  pending: '.',
  running: '*',
  upgraded: 'u',
  'fell-back': 'f',
  rejected: 'r',
  failed: 'x',
  'timed-out': 't',
  skipped: 's',
  'rolled-back': 'b',
} as const satisfies Record<NodeState, string>;
const STATE_OF: ReadonlyMap<string, NodeState> = new Map(
  Object.entries(CODE_OF).map(([state, code]) => [code, state as NodeState]),
);

/** Outcomes the failure threshold counts. */
const FAILED: ReadonlySet<NodeState> = new Set<NodeOutcome>(['fell-back', 'rejected', 'failed', 'timed-out']);

/** The targets of a rollout as carried across continue-as-new. */
export interface CarriedNodes {
  /** Target node ids in wave order, each once. */
  ids: string[];
  /** Nodes per wave: wave w holds the next `waveSizes[w]` ids. */
  waveSizes: number[];
  /** One letter per node of `ids`: its state. */
  states: string;
  /** Why nodes ended as they did: each text with the indexes (into `ids`) of the nodes it describes. */
  details: [string, number[]][];
  /** Versions the nodes ran before the rollout, run-length encoded over `ids`: [version, count]. */
  fromVersions: [string, number][];
}

/** Counters of the status view, without the skipped nodes (they are not targets). */
export interface NodeCounts {
  targets: number;
  upgraded: number;
  failed: number;
  running: number;
  pending: number;
}

/** The targets of a rollout and their states, with counters kept up to date. */
export interface NodeBook {
  readonly size: number;
  readonly waveCount: number;
  id(index: number): string;
  indexOf(nodeId: string): number | undefined;
  /** The wave of the node at `index`. */
  waveOf(index: number): number;
  /** Indexes of the wave's nodes: [start, end). */
  waveRange(wave: number): [number, number];
  /** Node ids of one wave, in the order the rollout starts them. */
  waveIds(wave: number): string[];
  waves(): string[][];
  state(index: number): NodeState;
  detail(index: number): string | undefined;
  /** The version the node ran before the rollout, when known. */
  fromVersion(index: number): string | undefined;
  set(index: number, state: NodeState, detail?: string | undefined): void;
  counts(): NodeCounts;
  /** Upgraded and failed nodes of one wave. */
  tally(wave: number): { succeeded: number; failed: number };
  /** The per-node map of the status view. */
  nodesView(): RolloutStatusView['nodes'];
  encode(): CarriedNodes;
}

/** Carried nodes of freshly planned waves: every node pending. */
export function plannedNodes(
  waves: readonly (readonly string[])[],
  fromVersion: (nodeId: string) => string | undefined,
): CarriedNodes {
  const ids = waves.flat();
  const fromVersions: [string, number][] = [];
  for (const id of ids) {
    const version = fromVersion(id) ?? '';
    const last = fromVersions.at(-1);
    if (last && last[0] === version) last[1]++;
    else fromVersions.push([version, 1]);
  }
  return {
    ids,
    waveSizes: waves.map((w) => w.length),
    states: CODE_OF.pending.repeat(ids.length),
    details: [],
    fromVersions,
  };
}

/** Opens carried nodes for reading and updating; the carried value itself is left alone. */
export function openNodeBook(carried: CarriedNodes): NodeBook {
  const ids = carried.ids;
  const size = ids.length;
  if (carried.states.length !== size) {
    throw new Error(`carried node states cover ${carried.states.length} nodes, expected ${size}`);
  }
  const index = new Map<string, number>();
  ids.forEach((id, i) => index.set(id, i));

  const starts: number[] = [];
  const waveOf: number[] = new Array<number>(size);
  let at = 0;
  carried.waveSizes.forEach((n, w) => {
    starts.push(at);
    for (let i = at; i < at + n && i < size; i++) waveOf[i] = w;
    at += n;
  });
  if (at !== size) throw new Error(`carried waves hold ${at} nodes, expected ${size}`);
  starts.push(size);

  const states: NodeState[] = new Array<NodeState>(size);
  for (let i = 0; i < size; i++) {
    const state = STATE_OF.get(carried.states[i] as string);
    if (!state) throw new Error(`carried node state '${carried.states[i]}' of ${ids[i]} is unknown`);
    states[i] = state;
  }
  const details = new Map<number, string>();
  for (const [text, nodes] of carried.details) for (const i of nodes) details.set(i, text);
  const versions: string[] = new Array<string>(size);
  let v = 0;
  for (const [version, count] of carried.fromVersions) {
    for (let k = 0; k < count && v < size; k++) versions[v++] = version;
  }

  const counts: NodeCounts = { targets: size, upgraded: 0, failed: 0, running: 0, pending: 0 };
  const tallies = carried.waveSizes.map(() => ({ succeeded: 0, failed: 0 }));
  const apply = (i: number, state: NodeState, delta: 1 | -1) => {
    const tally = tallies[waveOf[i] as number];
    if (state === 'upgraded') {
      counts.upgraded += delta;
      if (tally) tally.succeeded += delta;
    } else if (FAILED.has(state)) {
      counts.failed += delta;
      if (tally) tally.failed += delta;
    } else if (state === 'running') counts.running += delta;
    else if (state === 'pending') counts.pending += delta;
  };
  for (let i = 0; i < size; i++) apply(i, states[i] as NodeState, 1);
  const slices = new Map<number, string[]>();

  const book: NodeBook = {
    size,
    waveCount: carried.waveSizes.length,
    id: (i) => ids[i] as string,
    indexOf: (nodeId) => index.get(nodeId),
    waveOf: (i) => waveOf[i] as number,
    waveRange: (w) => [starts[w] ?? size, starts[w + 1] ?? size],
    waveIds(w) {
      let slice = slices.get(w);
      if (!slice) {
        const [start, end] = book.waveRange(w);
        slice = ids.slice(start, end);
        slices.set(w, slice);
      }
      return slice;
    },
    waves: () => carried.waveSizes.map((_, w) => book.waveIds(w)),
    state: (i) => states[i] as NodeState,
    detail: (i) => details.get(i),
    fromVersion: (i) => versions[i] || undefined,
    set(i, state, detail) {
      apply(i, states[i] as NodeState, -1);
      states[i] = state;
      apply(i, state, 1);
      if (detail) details.set(i, detail);
      else details.delete(i);
    },
    counts: () => ({ ...counts }),
    tally: (w) => ({ ...(tallies[w] ?? { succeeded: 0, failed: 0 }) }),
    nodesView() {
      const nodes: RolloutStatusView['nodes'] = {};
      for (let i = 0; i < size; i++) {
        const detail = details.get(i);
        nodes[ids[i] as string] = {
          wave: waveOf[i] as number,
          state: states[i] as NodeState,
          ...(detail ? { detail } : {}),
        };
      }
      return nodes;
    },
    encode() {
      const byText = new Map<string, number[]>();
      for (const [i, text] of [...details.entries()].sort((a, b) => a[0] - b[0])) {
        const list = byText.get(text);
        if (list) list.push(i);
        else byText.set(text, [i]);
      }
      return {
        ids,
        waveSizes: carried.waveSizes,
        states: states.map((s) => CODE_OF[s]).join(''),
        details: [...byText.entries()],
        fromVersions: carried.fromVersions,
      };
    },
  };
  return book;
}
