// Drives N simulated nodes through a rollout on a real Temporal dev server and nats-server and
// prints JSON: nodes per second through the orchestrator, wall time against the ideal schedule,
// and the largest history of any workflow execution (Temporal warns at 10,240 events). A run cut
// off at its deadline still reports how far it got and the largest history seen by then.
//
//   node bench/rollout-scale.ts [--nodes 1000] [--max-unavailable 50] [--waves 1,10%,50%,100%]
//                               [--step-ms 0] [--deadline-s N]
//
// The benchmark runner (bench/runner.ts) calls runRolloutScale() with its own control plane.
import { parseArgs } from 'node:util';
import type { WorkflowExecutionInfo, WorkflowHandle } from '@temporalio/client';
import { startRollout } from '../cli/rollout-client.ts';
import { startSimulatedFleet, type SimulatedFleet } from '../simulator/fleet.ts';
import { startControlPlane, type ControlPlane } from '../test/helpers/control-plane.ts';
import { parseWaves } from '../schema/index.ts';
import { planWaves } from '../workflows/planning.ts';

export interface RolloutScaleOptions {
  nodes: number;
  maxUnavailable: number;
  waves: string;
  /** The simulator's pause before each event a node emits. */
  stepMs: number;
  /** Run on this control plane (the caller stops it) instead of starting one. */
  plane?: ControlPlane;
  /** Rollout id (default `bench-<nodes>-<time>`). */
  id?: string;
  /** A rollout still running this long after its start is terminated; the result says so. */
  deadlineMs?: number;
  /** Time allowed for reading every execution's history length afterwards (default 10 min). */
  historyScanMs?: number;
  /** Called once the rollout has ended, before the fleet stops, to read more from the same run. */
  inspect?: (run: RolloutScaleRun) => Promise<void>;
}

/** What inspect() gets: the plane, the fleet and the rollout's id and start time (epoch ms). */
export interface RolloutScaleRun {
  plane: ControlPlane;
  fleet: SimulatedFleet;
  rolloutId: string;
  startedAtMs: number;
  nodeIds: string[];
}

const HISTORY_SAMPLE_MS = 10_000;

/** The execution with the most history events, by workflow id and run. */
export interface LargestHistory {
  workflowId: string;
  events: number;
}

/**
 * The largest history among every execution of a rollout: each of its runs first (the large
 * ones), then every node workflow, a few at a time. Closed executions carry their length in
 * visibility; a running one is described. Whatever the scan reads before an error or its time
 * budget is kept, and `incomplete` says what stopped it.
 */
async function largestHistory(
  plane: ControlPlane,
  rolloutId: string,
  budgetMs: number,
): Promise<{ largest: LargestHistory; executions: number; incomplete?: string }> {
  let stopAt = Date.now() + budgetMs;
  let largest: LargestHistory = { workflowId: '', events: 0 };
  const listed: WorkflowExecutionInfo[] = [];
  let read = 0;
  const lengthOf = async (wf: WorkflowExecutionInfo): Promise<number> =>
    wf.status.name !== 'RUNNING' && wf.historyLength > 0
      ? wf.historyLength
      : (await plane.client.workflow.getHandle(wf.workflowId, wf.runId).describe()).historyLength;
  try {
    for await (const wf of plane.client.workflow.list({ query: `RolloutId="${rolloutId}"` })) listed.push(wf);
    listed.sort((a, b) => Number(b.type === 'rolloutWorkflow') - Number(a.type === 'rolloutWorkflow'));
    let next = 0;
    const lane = async () => {
      while (next < listed.length && Date.now() < stopAt) {
        const wf = listed[next++]!;
        const events = await lengthOf(wf);
        read++;
        if (events > largest.events)
          largest = { workflowId: `${wf.workflowId} (run ${wf.runId.slice(0, 8)})`, events };
      }
    };
    await Promise.all(Array.from({ length: 8 }, lane));
    if (read < listed.length)
      return {
        largest,
        executions: listed.length,
        incomplete: `read ${read} of ${listed.length} executions within ${Math.round(budgetMs / 1000)} s`,
      };
    return { largest, executions: listed.length };
  } catch (err) {
    stopAt = 0; // the other lanes stop at their next execution
    return {
      largest,
      executions: listed.length,
      incomplete: `stopped after ${read} of ${listed.length} executions: ${(err as Error).message}`,
    };
  }
}

/** Terminates a rollout that ran out of time and says how far it got and why it was slow. */
async function stopAtDeadline(
  plane: ControlPlane,
  handle: WorkflowHandle,
  id: string,
  deadlineMs: number,
): Promise<{ status: string; upgraded: number; runs: number }> {
  const pending = await handle
    .describe()
    .then((d) => d.raw.pendingWorkflowTask?.attempt ?? 0)
    .catch(() => 0);
  await handle.terminate(`benchmark deadline of ${deadlineMs} ms`);
  const count = async (query: string) => (await plane.client.workflow.count(query)).count;
  const upgraded = await count(
    `RolloutId="${id}" AND WorkflowType="nodeUpgradeWorkflow" AND ExecutionStatus="Completed"`,
  );
  const runs = await count(`RolloutId="${id}" AND WorkflowType="rolloutWorkflow"`);
  const stuck = pending > 1 ? `; its workflow task was failing (attempt ${pending})` : '';
  return {
    status: `terminated at the ${Math.round(deadlineMs / 1000)} s deadline${stuck}`,
    upgraded,
    runs,
  };
}

export type RolloutScaleResult = Awaited<ReturnType<typeof runRolloutScale>>;

/** Runs one rollout over a simulated fleet and measures it. */
export async function runRolloutScale(options: RolloutScaleOptions) {
  const { nodes, maxUnavailable, stepMs } = options;
  const plane = options.plane ?? (await startControlPlane());
  try {
    const specs = Array.from({ length: nodes }, (_, i) => ({
      nodeId: `sim-${String(i + 1).padStart(5, '0')}`,
      labels: { bench: 'scale' },
    }));
    const fleet = await startSimulatedFleet({
      nc: plane.nc,
      trustedKeys: plane.trustedKeys,
      controlPlaneKey: plane.key,
      nodes: specs,
      stepDelayMs: stepMs,
      sharedConsumer: 'bench-simulated-fleet',
    });
    const id = options.id ?? `bench-${nodes}-${Date.now()}`;
    const startedAtMs = Date.now();
    const started = performance.now();
    const handle = await startRollout(plane.client, {
      id,
      image: { type: 'oci', reference: `registry.example/os:2.0.0@sha256:${'ab'.repeat(32)}` },
      version: '2.0.0',
      selector: 'bench=scale',
      waves: options.waves,
      maxUnavailable,
      timeouts: { accept: '5m', write: '5m', reboot: '5m', health: '5m' },
    });
    // The rollout's own history, sampled while it runs: what the figure falls back on when the
    // run is cut off and the scan after it cannot read every execution.
    let sampled: LargestHistory = { workflowId: '', events: 0 };
    const sampling = setInterval(() => {
      handle.describe().then(
        (d) => {
          if (d.historyLength > sampled.events)
            sampled = { workflowId: `${id} (run ${d.runId.slice(0, 8)})`, events: d.historyLength };
        },
        () => undefined, // a busy server misses a sample; the scan afterwards still counts
      );
    }, HISTORY_SAMPLE_MS);
    sampling.unref();
    let deadline: NodeJS.Timeout | undefined;
    let stopping = false;
    const outcome = await Promise.race([
      handle.result().then(
        (r) => ({ status: r.status, upgraded: r.counts.upgraded, runs: r.run }),
        // Terminating it at the deadline fails its result; the deadline's own outcome wins then.
        (err: unknown) => (stopping ? new Promise<never>(() => undefined) : Promise.reject(err)),
      ),
      new Promise<{ status: string; upgraded: number; runs: number }>((resolve, reject) => {
        if (options.deadlineMs === undefined) return;
        deadline = setTimeout(() => {
          stopping = true;
          // Count how far it got (from visibility: a stuck workflow cannot answer a query), then stop it.
          stopAtDeadline(plane, handle, id, options.deadlineMs ?? 0).then(resolve, reject);
        }, options.deadlineMs);
      }),
    ]).finally(() => {
      clearTimeout(deadline);
      clearInterval(sampling);
    });
    const elapsedMs = performance.now() - started;

    const scan = await largestHistory(plane, id, options.historyScanMs ?? 10 * 60_000);
    const largest = scan.largest.events >= sampled.events ? scan.largest : sampled;
    // Ideal: each wave takes ceil(size / maxUnavailable) node-durations, one after the other.
    const steps = parseWaves(options.waves);
    const waveSizes =
      typeof steps === 'string'
        ? []
        : planWaves(
            specs.map((s) => s.nodeId),
            steps,
          ).map((w) => w.length);
    const nodeSlots = waveSizes.reduce((sum, n) => sum + Math.ceil(n / maxUnavailable), 0);
    await options.inspect?.({
      plane,
      fleet,
      rolloutId: id,
      startedAtMs,
      nodeIds: specs.map((s) => s.nodeId),
    });
    await fleet.stop();
    return {
      bench: 'rollout-scale',
      nodes,
      maxUnavailable,
      waves: options.waves,
      status: outcome.status,
      /** Terminated at the deadline: `upgraded` says how far it got. */
      cutOff: stopping,
      upgraded: outcome.upgraded,
      runs: outcome.runs,
      elapsedMs: Math.round(elapsedMs),
      nodesPerSecond: Number(((outcome.upgraded / elapsedMs) * 1000).toFixed(2)),
      sequentialNodeSlots: nodeSlots,
      msPerNodeSlot: Number((elapsedMs / nodeSlots).toFixed(1)),
      executions: scan.executions,
      largestHistory: largest,
      ...(scan.incomplete ? { historyScan: scan.incomplete } : {}),
      historyWarningLimit: 10_240,
    };
  } finally {
    if (!options.plane) await plane.stop();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '1000' },
      'max-unavailable': { type: 'string', default: '50' },
      waves: { type: 'string', default: '1,10%,50%,100%' },
      'step-ms': { type: 'string', default: '0' },
      /** Terminate the rollout after this many seconds and report how far it got. */
      'deadline-s': { type: 'string' },
    },
  });
  const result = await runRolloutScale({
    nodes: Number(values.nodes),
    maxUnavailable: Number(values['max-unavailable']),
    waves: values.waves,
    stepMs: Number(values['step-ms']),
    ...(values['deadline-s'] ? { deadlineMs: Number(values['deadline-s']) * 1000 } : {}),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}
