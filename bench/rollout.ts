// The orchestrator under load: rollouts over simulated fleets (bench/rollout-scale.ts) with
// `slotflow worker` in its own process, each on a fresh dev server and nats-server. From them:
// wall time against the ideal schedule, command and event latencies, node rate against a trivial
// workflow's rate on the same server, the largest workflow history, and the worker's RSS.
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlPlane } from '../test/helpers/control-plane.ts';
import { GoalKind, measured, notMeasured, round, type Figure, type FigureSpec } from './figure.ts';
import { rolloutLatencies, type RolloutLatencies } from './rollout-latency.ts';
import { runRolloutScale, type RolloutScaleOptions, type RolloutScaleResult } from './rollout-scale.ts';
import { bareNodeRss, mib, rssOf, sampleRss } from './rss.ts';
import { latencySummary } from './stats.ts';
import { bySize, type BenchContext, type BenchModule, type Size } from './suite.ts';
import { trivialWorkflowRate } from './trivial-worker.ts';
import { startWorkerProcess } from './worker-process.ts';

const WAVES = '1,10%,50%,100%';
/**
 * Temporal's history size warning; the rollout continues as new at 8,000 events, or earlier when
 * Temporal suggests it, to stay under it.
 */
const HISTORY_WARNING = 10_240;
const LATENCY_GOAL_MS = 200;

/** One rollout to run: fleet size, concurrency and the simulated time of each node step. */
interface RunPlan {
  nodes: number;
  maxUnavailable: number;
  stepMs: number;
  deadlineMs?: number;
}

interface Plans {
  small: RunPlan;
  large: RunPlan;
  /** Node rate, 1,000-node history and the trivial baseline (the large run when steps are short). */
  throughput?: RunPlan;
  /** The 10,000-node history (full runs; tiny runs cut a small one off to check that path). */
  huge?: RunPlan;
  trivialCount: number;
}

function plansFor(size: Size): Plans {
  return bySize<Plans>(size, {
    // The huge run is cut off at its deadline on purpose: the plumbing of a run that cannot finish.
    tiny: {
      small: { nodes: 4, maxUnavailable: 2, stepMs: 20 },
      large: { nodes: 10, maxUnavailable: 5, stepMs: 20 },
      huge: { nodes: 40, maxUnavailable: 4, stepMs: 250, deadlineMs: 5_000 },
      trivialCount: 20,
    },
    // 250 ms steps (2 s per node): at 50 at a time the demand, 25 nodes/s, exceeds what two cores
    // sustain, so the large run doubles as the throughput run.
    quick: {
      small: { nodes: 100, maxUnavailable: 10, stepMs: 250 },
      large: { nodes: 1_000, maxUnavailable: 50, stepMs: 250 },
      trivialCount: 1_000,
    },
    // 1.25 s steps (10 s per node) leave the orchestrator headroom, so the overhead is its own.
    full: {
      small: { nodes: 100, maxUnavailable: 10, stepMs: 1_250 },
      large: { nodes: 1_000, maxUnavailable: 50, stepMs: 1_250 },
      throughput: { nodes: 1_000, maxUnavailable: 50, stepMs: 0 },
      huge: { nodes: 10_000, maxUnavailable: 500, stepMs: 0, deadlineMs: 10 * 60_000 },
      trivialCount: 2_000,
    },
  });
}

const overheadSpec = (p: RunPlan, key: string): FigureSpec => ({
  id: `rollout-overhead-${key}`,
  title: `rollout wall time, ${p.nodes.toLocaleString('en-US')} simulated nodes (${p.maxUnavailable} at a time)`,
  comparedWith: 'ideal schedule for the same waves and maxUnavailable',
  goal: { kind: GoalKind.overheadAtMost, target: 0.05, text: 'overhead ≤ 5 %' },
});
const latencyGoal = { kind: GoalKind.ratioAtMost, target: 1, text: `p99 ≤ ${LATENCY_GOAL_MS} ms` } as const;
const commandSpec: FigureSpec = {
  id: 'command-latency-p99',
  title: 'command latency p99 (workflow decision → agent accepts)',
  comparedWith: `the ${LATENCY_GOAL_MS} ms goal`,
  goal: latencyGoal,
};
const eventSpec: FigureSpec = {
  id: 'event-advance-p99',
  title: 'event → workflow advances p99',
  comparedWith: `the ${LATENCY_GOAL_MS} ms goal`,
  goal: latencyGoal,
};
const rateSpec: FigureSpec = {
  id: 'orchestrator-node-rate',
  title: 'nodes per second through the orchestrator',
  comparedWith: 'trivial one-activity workflows per second, same dev server',
  goal: { kind: GoalKind.ratioAtLeast, target: 0.5, text: '≥ 0.5' },
};
const historySpec = (nodes: number, key: string): FigureSpec => ({
  id: `history-largest-${key}`,
  title: `largest workflow history, ${nodes.toLocaleString('en-US')} nodes`,
  comparedWith: "Temporal's 10,240-event warning",
  goal: { kind: GoalKind.ratioAtMost, target: 0.9999, text: 'below it' },
});
const rssSpec: FigureSpec = {
  id: 'worker-rss',
  title: 'worker RSS, peak during the large rollout',
  comparedWith: 'a bare Node process',
  goal: { kind: GoalKind.report, text: 'report' },
};

function specs(size: Size) {
  const p = plansFor(size);
  const historyRun = p.throughput ?? p.large;
  return {
    small: overheadSpec(p.small, 'small'),
    large: overheadSpec(p.large, 'large'),
    command: commandSpec,
    event: eventSpec,
    rate: rateSpec,
    history: historySpec(historyRun.nodes, 'large'),
    huge: historySpec(p.huge?.nodes ?? 10_000, 'huge'),
    rss: rssSpec,
  };
}

/** What one rollout run gave. */
interface RunOutcome {
  plan: RunPlan;
  result: RolloutScaleResult;
  /** Simulated time of one node's upgrade: its steps × stepMs. */
  nodeMs: number;
  stepsPerNode: number;
  workerRss: { idle: number; peak: number; mean: number };
  latencies?: RolloutLatencies;
  trivial?: { perSecond: number; count: number; elapsedMs: number };
}

/** One rollout on a fresh control plane, the worker in its own process. */
async function runOne(
  ctx: BenchContext,
  plan: RunPlan,
  extras: { latencies?: boolean; trivialCount?: number } = {},
): Promise<RunOutcome> {
  ctx.say(`rollout: ${plan.nodes} nodes, ${plan.maxUnavailable} at a time, ${plan.stepMs} ms per step`);
  const plane = await startControlPlane({ worker: false });
  let worker: Awaited<ReturnType<typeof startWorkerProcess>> | undefined;
  try {
    worker = await startWorkerProcess(ctx.root, plane.env);
    await sleep(2_000);
    const idle = (await rssOf(worker.pid)) ?? 0;
    const sampler = sampleRss(worker.pid);
    let rss = { peak: 0, mean: 0 };
    let stepsPerNode = 0;
    let latencies: RolloutLatencies | undefined;
    let trivial: RunOutcome['trivial'];
    const options: RolloutScaleOptions = {
      nodes: plan.nodes,
      maxUnavailable: plan.maxUnavailable,
      waves: WAVES,
      stepMs: plan.stepMs,
      plane,
      ...(plan.deadlineMs ? { deadlineMs: plan.deadlineMs } : {}),
      inspect: async (run) => {
        rss = await sampler.stop();
        const counts = [...run.fleet.steps.values()].map((s) => s.length);
        stepsPerNode = counts.length ? Math.max(...counts) : 0;
        if (extras.latencies) {
          ctx.say('rollout: reading latencies from commands, events and histories');
          latencies = await rolloutLatencies({
            nc: plane.nc,
            client: plane.client,
            rolloutId: run.rolloutId,
            stepMs: plan.stepMs,
          });
        }
        if (extras.trivialCount) {
          ctx.say(`rollout: ${extras.trivialCount} trivial workflows on the same dev server`);
          trivial = await trivialWorkflowRate({
            address: plane.stack.temporal.address,
            namespace: plane.stack.temporal.namespace,
            client: plane.client,
            count: extras.trivialCount,
            concurrency: plan.maxUnavailable,
          });
        }
      },
    };
    const result = await runRolloutScale(options);
    return {
      plan,
      result,
      nodeMs: stepsPerNode * plan.stepMs,
      stepsPerNode,
      workerRss: { idle, peak: rss.peak, mean: rss.mean },
      ...(latencies ? { latencies } : {}),
      ...(trivial ? { trivial } : {}),
    };
  } catch (err) {
    const tail = worker?.tail();
    throw new Error(`${(err as Error).message}${tail ? `\nworker's last lines:\n${tail}` : ''}`, {
      cause: err,
    });
  } finally {
    await worker?.stop().catch(() => undefined);
    await plane.stop();
  }
}

const summary = (o: RunOutcome) => ({
  nodes: o.plan.nodes,
  maxUnavailable: o.plan.maxUnavailable,
  stepMs: o.plan.stepMs,
  status: o.result.status,
  upgraded: o.result.upgraded,
  elapsedMs: o.result.elapsedMs,
  nodesPerSecond: o.result.nodesPerSecond,
  continuedAsNew: o.result.runs - 1,
  executions: o.result.executions,
  largestHistory: o.result.largestHistory,
});

function overheadFigure(spec: FigureSpec, o: RunOutcome): Figure {
  const details = {
    ...summary(o),
    waves: WAVES,
    stepsPerNode: o.stepsPerNode,
    simulatedNodeMs: o.nodeMs,
    sequentialNodeSlots: o.result.sequentialNodeSlots,
  };
  if (o.result.status !== 'succeeded')
    return notMeasured(spec, 'failed', `the rollout ended ${o.result.status}`, details);
  if (o.nodeMs === 0)
    return notMeasured(spec, 'failed', 'no simulated step time, so no ideal schedule', details);
  const ideal = o.result.sequentialNodeSlots * o.nodeMs;
  const overhead = o.result.elapsedMs / ideal - 1;
  return measured(
    spec,
    { amount: round(o.result.elapsedMs / 1000, 1), unit: 's' },
    { amount: round(ideal / 1000, 1), unit: 's' },
    {
      reason: `${round(overhead * 100, 1)} % over the ideal (${o.result.sequentialNodeSlots} node slots × ${o.nodeMs / 1000} s)`,
      details,
    },
  );
}

function latencyFigure(
  spec: FigureSpec,
  samples: number[] | undefined,
  o: RunOutcome,
  extra: object,
): Figure {
  const stats = latencySummary(samples ?? []);
  const details = { ...stats, ...extra, run: summary(o) };
  if (stats.p99 === undefined)
    return notMeasured(spec, 'failed', 'no samples were read from the run', details);
  return measured(
    spec,
    { amount: stats.p99, unit: 'ms' },
    { amount: LATENCY_GOAL_MS, unit: 'ms' },
    { details, reason: `from the ${o.plan.nodes}-node rollout; p50 ${stats.p50} ms` },
  );
}

function historyFigure(spec: FigureSpec, o: RunOutcome | undefined, why?: string): Figure {
  if (!o) return notMeasured(spec, 'unavailable', why ?? 'not run');
  const details = summary(o);
  const { events, workflowId } = o.result.largestHistory;
  if (events === 0) return notMeasured(spec, 'failed', 'no history was read', details);
  // A rollout cut off at its deadline still reports the largest history it reached: a lower
  // bound, judged like any other (the rollout continues as new well before the warning).
  if (o.result.cutOff) {
    return measured(
      spec,
      { amount: events, unit: 'events' },
      { amount: HISTORY_WARNING, unit: 'events' },
      {
        reason: `cut off: ${o.result.status}, after ${o.result.upgraded.toLocaleString('en-US')} of ${o.plan.nodes.toLocaleString('en-US')} nodes; the largest history seen by then (${workflowId})`,
        details: {
          ...details,
          cutOff: true,
          ...(o.result.historyScan ? { historyScan: o.result.historyScan } : {}),
        },
      },
    );
  }
  // One that ended otherwise (failed, paused) is not the run the figure describes.
  if (o.result.status !== 'succeeded') {
    return notMeasured(
      spec,
      'failed',
      `the rollout ended ${o.result.status} after ${o.result.upgraded} of ${o.plan.nodes} nodes; largest history ${events} events (${workflowId})`,
      details,
    );
  }
  return measured(
    spec,
    { amount: events, unit: 'events' },
    { amount: HISTORY_WARNING, unit: 'events' },
    {
      reason: `${workflowId}; the rollout continues as new past 8,000 events or when Temporal suggests it`,
      details,
    },
  );
}

function rateFigure(spec: FigureSpec, o: RunOutcome): Figure {
  const details = {
    ...summary(o),
    idealNodesPerSecond: o.nodeMs
      ? round((o.plan.maxUnavailable * 1000) / o.nodeMs, 1)
      : 'unbounded (no simulated step time)',
    ...(o.trivial ? { trivial: { ...o.trivial, concurrency: o.plan.maxUnavailable } } : {}),
  };
  if (o.result.status !== 'succeeded')
    return notMeasured(spec, 'failed', `the rollout ended ${o.result.status}`, details);
  if (!o.trivial) return notMeasured(spec, 'failed', 'the trivial workflows did not run', details);
  return measured(
    spec,
    { amount: o.result.nodesPerSecond, unit: 'nodes/s' },
    { amount: round(o.trivial.perSecond, 2), unit: 'nodes/s' },
    {
      details,
      reason: `${o.plan.nodes} nodes, ${o.plan.maxUnavailable} at a time, against ${o.trivial.count} trivial workflows as many at a time`,
    },
  );
}

export const rolloutBench: BenchModule = {
  name: 'rollout',
  summary: 'rollouts over simulated fleets: overhead, latencies, node rate, history, worker RSS',
  figures: (size) => Object.values(specs(size)),
  async run(ctx) {
    const plans = plansFor(ctx.size);
    const s = specs(ctx.size);
    const bare = await bareNodeRss();
    // A run that breaks fails only the figures drawn from it.
    const attempt = (plan: RunPlan, extras?: Parameters<typeof runOne>[2]) =>
      runOne(ctx, plan, extras).catch((err: unknown) =>
        err instanceof Error ? err : new Error(String(err)),
      );
    const failed = (spec: FigureSpec, err: Error) =>
      notMeasured(spec, 'failed', err.message, { error: err.stack });

    const small = await attempt(plans.small);
    const large = await attempt(plans.large, {
      latencies: true,
      ...(plans.throughput ? {} : { trivialCount: plans.trivialCount }),
    });
    const throughput = plans.throughput
      ? await attempt(plans.throughput, { trivialCount: plans.trivialCount })
      : large;
    const huge = plans.huge ? await attempt(plans.huge) : undefined;

    const figures: Figure[] = [
      small instanceof Error ? failed(s.small, small) : overheadFigure(s.small, small),
    ];
    if (large instanceof Error) {
      figures.push(failed(s.large, large), failed(s.command, large), failed(s.event, large));
    } else {
      const lat = large.latencies;
      figures.push(
        overheadFigure(s.large, large),
        latencyFigure(s.command, lat?.decisionToAccept, large, {
          issuedAtToAccept: latencySummary(lat?.issuedToAccept ?? []),
          note: 'decision = ActivityTaskScheduled of sendCommand in the node workflow; accept = UpgradeCommandAccepted.at minus the simulated step',
        }),
        latencyFigure(s.event, lat?.eventToAdvance, large, {
          eventToSignalRecorded: latencySummary(lat?.eventToSignal ?? []),
          note: "event.at → the node workflow's next WorkflowTaskCompleted after the signal carrying it",
          workflows: lat?.workflows,
        }),
      );
    }
    if (throughput instanceof Error) {
      figures.push(failed(s.rate, throughput), failed(s.history, throughput));
    } else {
      figures.push(rateFigure(s.rate, throughput), historyFigure(s.history, throughput));
    }
    figures.push(
      huge === undefined
        ? historyFigure(s.huge, undefined, 'the 10,000-node run is part of the full run only')
        : huge instanceof Error
          ? failed(s.huge, huge)
          : historyFigure(s.huge, huge),
    );
    figures.push(
      large instanceof Error
        ? failed(s.rss, large)
        : measured(
            s.rss,
            { amount: mib(large.workerRss.peak), unit: 'MiB' },
            { amount: mib(bare), unit: 'MiB' },
            {
              details: {
                idleMiB: mib(large.workerRss.idle),
                meanDuringRolloutMiB: mib(large.workerRss.mean),
                ...(small instanceof Error ? {} : { smallRolloutPeakMiB: mib(small.workerRss.peak) }),
                run: summary(large),
              },
              reason: `idle ${mib(large.workerRss.idle)} MiB before the rollout`,
            },
          ),
    );
    return figures;
  },
};
