// The worker-kill campaign: rollouts against a real Temporal dev server and nats-server with
// simulated nodes (real protocol), while `slotflow worker` is SIGKILLed at seeded random points —
// during an image build, a wave, an approval wait, right after a continue-as-new, and during the
// compensation of a rollback — and started again. Every rollout must end as its scenario says,
// and no node may be commanded twice. Commands are counted from the Temporal histories (every
// sendCommand that completed), not from the command stream, which drops a re-sent message id for
// ten minutes, nor from the nodes, which refuse a replayed nonce: both would hide a re-send.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { WORKFLOWS_PATH } from '../../workers/worker.ts';
import { startRollout } from '../../cli/rollout-client.ts';
import { startSimulatedFleet, type Behavior, type SimulatedFleet } from '../../simulator/fleet.ts';
import { approveUpdate, rolloutWorkflowId, statusQuery } from '../../workflows/definitions.ts';
import type { ControlPlane } from '../helpers/control-plane.ts';
import { commandsPublished, recordedAgainstStored, rolloutHistories } from '../helpers/histories.ts';
import { makeRootfs, rolloutEvents } from '../helpers/rollouts.ts';
import { dice, hostLoad, poll, type CampaignSettings, type Dice } from './campaign.ts';
import { spawnWorker, type WorkerProcess } from './worker-process.ts';

const quietBundler = new DefaultLogger('WARN');

/** Where in a rollout the worker dies. */
export type KillPoint = 'image-build' | 'wave' | 'approval' | 'continue-as-new' | 'rolling-back';

/** Every kind of point the campaign must hit at least once (given enough kills). */
export const KILL_POINTS: readonly KillPoint[] = [
  'image-build',
  'wave',
  'approval',
  'continue-as-new',
  'rolling-back',
];

interface Scenario {
  readonly name: 'build-approve-continue' | 'rollback';
  /** Kill points in the order the rollout reaches them. */
  readonly points: readonly KillPoint[];
}

const SCENARIOS: readonly Scenario[] = [
  // Builds its image, waits for approval after the canary wave, continues as new in the second.
  { name: 'build-approve-continue', points: ['image-build', 'wave', 'approval', 'continue-as-new'] },
  // The sixth node of the first wave fails its health check: the five upgraded are rolled back.
  { name: 'rollback', points: ['wave', 'rolling-back'] },
];

const NODES = 8;
const FAILING = 5; // index of the node that fails its health check in the rollback scenario
// Longest a point's delay after its window opens, in ms.
const MAX_DELAY: Record<KillPoint, number> = {
  'image-build': 1500,
  wave: 1000,
  approval: 500,
  'continue-as-new': 300,
  'rolling-back': 800,
};
const MAX_DOWN_MS = 3000;
// Node phases far longer than a worker's absence plus an activity's 30 s retry, so a kill never
// times a node out: a time-out would be the campaign's own doing, not a finding.
const PHASE = '150s';
const POINT_WAIT_MS = 180_000;
const ROLLOUT_WAIT_MS = 600_000;

/** One kill as it happened. */
export interface KillRecord {
  readonly rolloutId: string;
  readonly point: KillPoint;
  /** The point was reached and the worker killed (false: the rollout went past it first). */
  readonly hit: boolean;
  readonly delayMs: number;
  readonly downMs: number;
  readonly at?: string;
  /** The rollout's status when the worker died (from the last query before the kill). */
  readonly statusAtKill?: string;
  /** How long the worker that replaced it took to start, ms. */
  restartMs?: number;
}

/** One rollout of the campaign and what its checks found. */
export interface RolloutRecord {
  readonly rolloutId: string;
  readonly scenario: Scenario['name'];
  status?: string;
  runs?: number;
  /** Command types each node was published, from the histories. */
  published: Record<string, string[]>;
  /** sendCommand activities that completed on a later attempt (same command id, re-sent). */
  retriedSends: string[];
  problems: string[];
}

export interface WorkerKillReport {
  readonly campaign: 'worker-kill';
  readonly seed: number;
  readonly killsPlanned: number;
  killsDone: number;
  readonly startedAt: string;
  finishedAt?: string;
  readonly loadAtStart: ReturnType<typeof hostLoad>;
  loadAtEnd?: ReturnType<typeof hostLoad>;
  pointsHit: Partial<Record<KillPoint, number>>;
  kills: KillRecord[];
  rollouts: RolloutRecord[];
  /** Every problem found, each naming its rollout. */
  problems: string[];
}

/** The rollouts and their kill points: scenarios in turn until the kills are used up. */
export function planCampaign(kills: number): { scenario: Scenario; points: KillPoint[] }[] {
  const out: { scenario: Scenario; points: KillPoint[] }[] = [];
  let left = kills;
  for (let i = 0; left > 0; i++) {
    const scenario = SCENARIOS[i % SCENARIOS.length]!;
    const points = scenario.points.slice(0, left);
    left -= points.length;
    out.push({ scenario, points });
  }
  return out;
}

/** What each node must have been sent, from how the scenario ends. */
function expectedCommands(scenario: Scenario['name'], nodeIds: readonly string[]): Map<string, string[]> {
  if (scenario === 'build-approve-continue') return new Map(nodeIds.map((id) => [id, ['Upgrade']]));
  return new Map(
    nodeIds.flatMap((id, i): [string, string[]][] => {
      if (i < FAILING) return [[id, ['Upgrade', 'Rollback']]];
      if (i === FAILING) return [[id, ['Upgrade']]];
      return []; // the second wave never starts
    }),
  );
}

/** Runs the campaign on a control plane started without an in-process worker. */
export async function runWorkerKillCampaign(
  plane: ControlPlane,
  settings: CampaignSettings,
  say: (line: string) => void = () => undefined,
): Promise<WorkerKillReport> {
  const rng = dice(settings.seed);
  const report: WorkerKillReport = {
    campaign: 'worker-kill',
    seed: settings.seed,
    killsPlanned: settings.faults,
    killsDone: 0,
    startedAt: new Date().toISOString(),
    loadAtStart: hostLoad(),
    pointsHit: {},
    kills: [],
    rollouts: [],
    problems: [],
  };
  // Built once: a worker that bundles its workflows at every start takes minutes on a loaded host.
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietBundler });
  const bundle = join(await mkdtemp(join(tmpdir(), 'slotflow-bundle-')), 'workflows.js');
  await writeFile(bundle, code);
  const env = { ...plane.env, SLOTFLOW_WORKFLOW_BUNDLE: bundle };
  let worker = spawnWorker(env);
  const restart = async (): Promise<WorkerProcess> => {
    worker = spawnWorker(env);
    return worker;
  };
  try {
    say(`first worker started in ${await worker.ready} ms`);
    for (const [i, { scenario, points }] of planCampaign(settings.faults).entries()) {
      const rolloutId = `wk-${settings.seed}-${i + 1}`;
      say(`rollout ${rolloutId} (${scenario.name}): kills at ${points.join(', ')}`);
      const record = await runOne(
        plane,
        rng,
        rolloutId,
        scenario,
        points,
        {
          current: () => worker,
          restart,
          kills: report.kills,
        },
        say,
      );
      report.rollouts.push(record);
      report.problems.push(...record.problems.map((p) => `${rolloutId}: ${p}`));
      say(
        `rollout ${rolloutId}: ${record.status ?? 'no result'}${record.problems.length ? `, ${record.problems.length} problem(s)` : ', checks passed'}`,
      );
    }
  } finally {
    await worker.kill();
  }
  for (const k of report.kills) {
    if (!k.hit) continue;
    report.killsDone++;
    report.pointsHit[k.point] = (report.pointsHit[k.point] ?? 0) + 1;
  }
  report.finishedAt = new Date().toISOString();
  report.loadAtEnd = hostLoad();
  return report;
}

interface WorkerControl {
  current(): WorkerProcess;
  restart(): Promise<WorkerProcess>;
  kills: KillRecord[];
}

async function runOne(
  plane: ControlPlane,
  rng: Dice,
  rolloutId: string,
  scenario: Scenario,
  points: readonly KillPoint[],
  workers: WorkerControl,
  say: (line: string) => void,
): Promise<RolloutRecord> {
  const record: RolloutRecord = {
    rolloutId,
    scenario: scenario.name,
    published: {},
    retriedSends: [],
    problems: [],
  };
  const nodeIds = Array.from({ length: NODES }, (_, i) => `${rolloutId}-n${i + 1}`);
  const rollback = scenario.name === 'rollback';
  const fleet: SimulatedFleet = await startSimulatedFleet({
    nc: plane.nc,
    trustedKeys: plane.trustedKeys,
    controlPlaneKey: plane.key,
    nodes: nodeIds.map((nodeId, i) => ({
      nodeId,
      labels: { site: rolloutId },
      behavior: (rollback && i === FAILING ? 'fail-health' : 'ok') as Behavior,
    })),
    stepDelayMs: rollback ? 250 : 150,
  });
  // The operator approves a wave whenever asked, except while the approval kill is still to come.
  let holdApproval = points.includes('approval');
  let stopApprover = false;
  const approver = (async () => {
    while (!stopApprover) {
      await new Promise((r) => setTimeout(r, 300));
      if (holdApproval) continue;
      const handle = plane.client.workflow.getHandle(rolloutWorkflowId(rolloutId));
      try {
        if ((await handle.query(statusQuery)).waitingFor === 'approval')
          await handle.executeUpdate(approveUpdate, { args: [{ by: 'campaign', reason: 'approved' }] });
      } catch {
        // no worker right now, or the wave was approved meanwhile
      }
    }
  })();
  try {
    const handle = await startRollout(
      plane.client,
      {
        id: rolloutId,
        image: rollback
          ? { type: 'rootfs', path: await makeRootfs('2.0.0', 64 * 1024) }
          : { type: 'rootfs', path: await makeRootfs('2.0.0') },
        version: '2.0.0',
        selector: `site=${rolloutId}`,
        waves: rollback ? '6,100%' : '2,100%',
        maxUnavailable: 3,
        onFailure: rollback ? 'rollback' : 'pause',
        approveWaves: !rollback,
        timeouts: { accept: PHASE, write: PHASE, reboot: PHASE, health: PHASE },
      },
      // Low enough that the second wave continues as new at least once.
      { historyBudget: rollback ? 100_000 : 60 },
    );
    for (const point of points) {
      const kill = await killAt(plane.client, rolloutId, point, rng, workers);
      workers.kills.push(kill);
      say(
        kill.hit
          ? `  killed during ${point} (status ${kill.statusAtKill ?? '?'}, +${kill.delayMs} ms, down ${kill.downMs} ms, restarted in ${kill.restartMs} ms)`
          : `  missed ${point}: the rollout went past it`,
      );
      if (point === 'approval') holdApproval = false;
    }
    holdApproval = false;
    const result = await Promise.race([
      handle.result(),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`no result in ${ROLLOUT_WAIT_MS} ms`)), ROLLOUT_WAIT_MS).unref(),
      ),
    ]);
    record.status = result.status;
    record.runs = result.run;
    const wanted = rollback ? 'rolled-back' : 'succeeded';
    if (result.status !== wanted) record.problems.push(`ended ${result.status}, expected ${wanted}`);
    if (!rollback && result.run < 2) record.problems.push('never continued as new');
    await checkCommands(plane, rolloutId, scenario.name, nodeIds, fleet, record);
  } catch (err) {
    record.problems.push(`did not finish: ${(err as Error).message}`);
  } finally {
    stopApprover = true;
    await approver;
    await fleet.stop();
  }
  return record;
}

/** Waits for the point, waits its random delay, kills the worker, waits its random downtime, restarts it. */
async function killAt(
  client: Client,
  rolloutId: string,
  point: KillPoint,
  rng: Dice,
  workers: WorkerControl,
): Promise<KillRecord> {
  const delayMs = rng.between(0, MAX_DELAY[point]);
  const downMs = rng.between(0, MAX_DOWN_MS);
  const handle = client.workflow.getHandle(rolloutWorkflowId(rolloutId));
  let lastStatus: string | undefined;
  const status = async () => {
    const s = await handle.query(statusQuery);
    lastStatus = s.status;
    return s;
  };
  let reached: boolean | undefined;
  if (point === 'continue-as-new') {
    // The run id changes the moment the server starts the new run, before any worker ran it.
    const first = (await poll(POINT_WAIT_MS, async () => (await handle.describe()).runId)) ?? '';
    reached = await poll(POINT_WAIT_MS, async () => {
      const d = await handle.describe();
      if (d.status.name !== 'RUNNING') return false;
      return d.runId !== first ? true : undefined;
    });
  } else if (point === 'image-build') {
    const build = client.workflow.getHandle(`image/${rolloutId}`);
    reached = await poll(POINT_WAIT_MS, async () =>
      (await build.describe()).status.name === 'RUNNING' ? true : undefined,
    );
  } else {
    const open: Record<
      Exclude<KillPoint, 'continue-as-new' | 'image-build'>,
      (s: Awaited<ReturnType<typeof status>>) => boolean
    > = {
      wave: (s) => s.counts.running > 0,
      approval: (s) => s.waitingFor === 'approval',
      'rolling-back': (s) => s.status === 'rolling-back',
    };
    reached = await poll(POINT_WAIT_MS, async () => {
      const s = await status();
      if (['succeeded', 'failed', 'aborted', 'rolled-back'].includes(s.status)) return false;
      return open[point](s) ? true : undefined;
    });
  }
  if (!reached) return { rolloutId, point, hit: false, delayMs, downMs };
  await new Promise((r) => setTimeout(r, delayMs));
  await status().catch(() => undefined);
  const at = new Date().toISOString();
  await workers.current().kill();
  await new Promise((r) => setTimeout(r, downMs));
  const kill: KillRecord = {
    rolloutId,
    point,
    hit: true,
    delayMs,
    downMs,
    at,
    ...(lastStatus ? { statusAtKill: lastStatus } : {}),
  };
  try {
    kill.restartMs = await (await workers.restart()).ready;
  } catch {
    // A worker that dies while starting (the server busy, say) is started once more.
    kill.restartMs = await (await workers.restart()).ready;
  }
  return kill;
}

/** Commands per node from the histories against the scenario, the nodes, and the event stream. */
async function checkCommands(
  plane: ControlPlane,
  rolloutId: string,
  scenario: Scenario['name'],
  nodeIds: readonly string[],
  fleet: SimulatedFleet,
  record: RolloutRecord,
): Promise<void> {
  const runs = await rolloutHistories(plane.client, rolloutId);
  const published = commandsPublished(runs);
  for (const c of published) {
    (record.published[c.nodeId] ??= []).push(c.type);
    if (c.attempt > 1) record.retriedSends.push(`${c.commandId} (attempt ${c.attempt})`);
  }
  const expected = expectedCommands(scenario, nodeIds);
  for (const nodeId of nodeIds) {
    const sent = record.published[nodeId] ?? [];
    const want = expected.get(nodeId) ?? [];
    const repeated = sent.filter((t, i) => sent.indexOf(t) !== i);
    if (repeated.length > 0) record.problems.push(`${nodeId} was commanded twice: ${sent.join(', ')}`);
    else if (sent.join() !== want.join())
      record.problems.push(`${nodeId} was sent [${sent.join(', ')}], expected [${want.join(', ')}]`);
    const got = (fleet.received.get(nodeId) ?? []).map((c) => c.type);
    if (got.join() !== sent.join())
      record.problems.push(`${nodeId} acted on [${got.join(', ')}] but was published [${sent.join(', ')}]`);
  }
  const ids = published.map((c) => c.commandId);
  const twice = ids.filter((id, i) => ids.indexOf(id) !== i);
  if (twice.length > 0) record.problems.push(`command ids published twice: ${twice.join(', ')}`);
  const stored = (await rolloutEvents(plane.nc, rolloutId)).map((e) => e.event.id);
  const events = recordedAgainstStored(runs, stored);
  if (events.twice.length > 0) record.problems.push(`events recorded twice: ${events.twice.join(', ')}`);
  if (events.lost.length > 0)
    record.problems.push(`events recorded but not stored: ${events.lost.join(', ')}`);
}
