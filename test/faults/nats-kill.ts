// The nats-kill campaign: rollouts to real agent processes (file slots, simulated reboots, the
// peer-to-peer fallback on) with a real Temporal dev server and nats-server, while nats-server is
// SIGKILLed at seeded random points — before the rollout's signed plan reached every agent, and
// after — and started again on the same store dir. Every rollout must complete, and every event
// an agent produced must be stored exactly once. "Produced" comes from the agents' event ledgers
// (every id that entered a journal's outbox, written before it is published); "stored" from a raw
// read of every message in the stream, counted per id: lost and duplicated ids are reported.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { startRollout } from '../../cli/rollout-client.ts';
import { openEventLog } from '../../eventlog/index.ts';
import { parseJournal } from '../../node-agent/journal.ts';
import type { JournalData } from '../../node-agent/journal-data.ts';
import { createMeshKey, meshKeyPath } from '../../p2p/index.ts';
import { catchUp, emptyProjection } from '../../projection/index.ts';
import { EVENTS_STREAM, EVENTS_SUBJECTS } from '../../schema/index.ts';
import { keysDir } from '../../signing/index.ts';
import { pickFreePorts } from '../../stack/index.ts';
import { AgentProcess } from '../agent/agent-process.ts';
import type { ControlPlane } from '../helpers/control-plane.ts';
import { preauthorize } from '../helpers/enrol.ts';
import { recordedAgainstStored, rolloutHistories } from '../helpers/histories.ts';
import { publishImage } from '../helpers/rollouts.ts';
import { dice, hostLoad, poll, type CampaignSettings, type Dice } from './campaign.ts';

/** When, relative to the rollout's plan reaching the agents, NATS dies. */
export type NatsKillPoint = 'before-plan' | 'after-plan';

const AGENTS = 4;
const MAX_UNAVAILABLE = 2;
// Kills per rollout: one before the plan is everywhere, one after.
const POINTS: readonly NatsKillPoint[] = ['before-plan', 'after-plan'];
const MAX_BEFORE_DELAY_MS = 1500;
const MAX_AFTER_DELAY_MS = 4000;
const MIN_DOWN_MS = 1000;
const MAX_DOWN_MS = 8000;
const ROLLOUT_WAIT_MS = 600_000;

export interface NatsKillRecord {
  readonly rolloutId: string;
  readonly point: NatsKillPoint;
  readonly delayMs: number;
  readonly downMs: number;
  readonly at: string;
  /** Agents holding the rollout's plan when NATS died (what the point really was). */
  readonly agentsWithPlan: number;
}

export interface NatsRolloutRecord {
  readonly rolloutId: string;
  readonly version: string;
  status?: string;
  upgraded?: number;
  problems: string[];
}

export interface NatsKillReport {
  readonly campaign: 'nats-kill';
  readonly seed: number;
  readonly killsPlanned: number;
  killsDone: number;
  readonly agents: number;
  readonly startedAt: string;
  finishedAt?: string;
  readonly loadAtStart: ReturnType<typeof hostLoad>;
  loadAtEnd?: ReturnType<typeof hostLoad>;
  /** Kills by where they really fell: before every agent had the plan, or after. */
  observed: { beforePlanEverywhere: number; afterPlanEverywhere: number };
  kills: NatsKillRecord[];
  rollouts: NatsRolloutRecord[];
  /** Over the whole campaign: ids the agents produced, and how the stream holds them. */
  events?: {
    produced: number;
    stored: number;
    lost: string[];
    duplicated: string[];
    /** A step (command and event type) stored under two ids: a step taken or recorded twice. */
    stepsTwice: string[];
  };
  problems: string[];
}

interface Machine {
  readonly nodeId: string;
  readonly dataDir: string;
  readonly ledger: string;
  readonly proc: AgentProcess;
}

/** Starts the agents: pre-authorised, in one closed peer mesh, each keeping an event ledger. */
async function startAgents(plane: ControlPlane, root: string, prefix: string): Promise<Machine[]> {
  const meshKey = meshKeyPath(plane.home);
  await createMeshKey(meshKey);
  const ports = await pickFreePorts(AGENTS);
  const addrs = ports.map((p) => `/ip4/127.0.0.1/tcp/${p}`);
  const log = await openEventLog(plane.nc);
  const machines: Machine[] = [];
  for (let i = 0; i < AGENTS; i++) {
    const nodeId = `${prefix}-${i + 1}`;
    const dataDir = join(root, nodeId);
    await mkdir(dataDir, { recursive: true });
    await preauthorize(plane.nc, log, plane.home, nodeId, dataDir);
    const configFile = join(root, `${nodeId}.json`);
    await writeFile(
      configFile,
      JSON.stringify({
        p2p: {
          listen: [addrs[i]],
          bootstrap: addrs.filter((_, j) => j !== i),
          allowedNetworks: ['127.0.0.0/8'],
          natsLossGrace: '2s',
        },
      }),
    );
    const ledger = join(root, `${nodeId}.ledger`);
    const args = [
      '--node-id',
      nodeId,
      '--data-dir',
      dataDir,
      '--trusted-keys',
      keysDir(plane.home),
      '--labels',
      `site=${prefix}`,
      '--initial-version',
      '1.0.0',
      '--heartbeat-interval',
      '2s',
      '--config',
      configFile,
      '--mesh-key',
      meshKey,
    ];
    const env = {
      ...process.env,
      ...plane.env,
      NODE_COMPILE_CACHE: join(root, 'compile-cache'),
      SLOTFLOW_LOG_LEVEL: 'info',
      SLOTFLOW_EVENT_LEDGER: ledger,
    };
    const proc = await AgentProcess.start(args, env, join(root, `${nodeId}.log`));
    machines.push({ nodeId, dataDir, ledger, proc });
  }
  return machines;
}

async function journalOf(m: Machine): Promise<JournalData> {
  const file = join(m.dataDir, 'journal.json');
  return parseJournal(await readFile(file, 'utf8'), file);
}

async function hasPlan(m: Machine, rolloutId: string): Promise<boolean> {
  try {
    const plans = JSON.parse(await readFile(join(m.dataDir, 'plans.json'), 'utf8')) as {
      plan?: { rolloutId?: string };
    }[];
    return plans.some((p) => p.plan?.rolloutId === rolloutId);
  } catch {
    return false;
  }
}

/**
 * Every message in the event stream, read raw (no parsing beyond JSON, nothing skipped): the id,
 * subject and body of each, in stream order.
 */
export async function rawStreamEvents(
  plane: ControlPlane,
): Promise<{ seq: number; subject: string; body: Record<string, unknown> }[]> {
  const jsm = await jetstreamManager(plane.nc);
  const js = jetstream(plane.nc);
  const info = await jsm.consumers.add(EVENTS_STREAM, {
    ack_policy: AckPolicy.None,
    deliver_policy: DeliverPolicy.All,
    filter_subjects: [EVENTS_SUBJECTS],
    inactive_threshold: nanos(30_000),
    mem_storage: true,
  });
  const out: { seq: number; subject: string; body: Record<string, unknown> }[] = [];
  const consumer = await js.consumers.get(EVENTS_STREAM, info.name);
  let pending = info.num_pending;
  while (pending > 0) {
    const batch = await consumer.fetch({ max_messages: Math.min(pending, 1000), expires: 5000 });
    let got = 0;
    for await (const m of batch) {
      got++;
      pending = m.info.pending;
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(m.string()) as Record<string, unknown>;
      } catch {
        body = { id: `(not JSON at seq ${m.seq})` };
      }
      out.push({ seq: m.seq, subject: m.subject, body });
    }
    if (got === 0) throw new Error(`the event stream stopped delivering with ${pending} messages left`);
  }
  await jsm.consumers.delete(EVENTS_STREAM, info.name).catch(() => undefined);
  return out;
}

/** Runs the campaign: agents and a control plane with its worker in process. */
export async function runNatsKillCampaign(
  plane: ControlPlane,
  root: string,
  settings: CampaignSettings,
  say: (line: string) => void = () => undefined,
): Promise<NatsKillReport> {
  const rng = dice(settings.seed);
  const prefix = `nk${settings.seed}`;
  const report: NatsKillReport = {
    campaign: 'nats-kill',
    seed: settings.seed,
    killsPlanned: settings.faults,
    killsDone: 0,
    agents: AGENTS,
    startedAt: new Date().toISOString(),
    loadAtStart: hostLoad(),
    observed: { beforePlanEverywhere: 0, afterPlanEverywhere: 0 },
    kills: [],
    rollouts: [],
    problems: [],
  };
  const machines = await startAgents(plane, root, prefix);
  try {
    const log = await openEventLog(plane.nc);
    const registered = await poll(120_000, async () => {
      const p = await catchUp(emptyProjection(), log, { trustedKeys: plane.trustedKeys });
      return machines.every((m) => p.nodes.has(m.nodeId)) ? true : undefined;
    });
    if (!registered) throw new Error(`the ${AGENTS} agents did not register within 120 s (logs in ${root})`);
    let left = settings.faults;
    for (let r = 1; left > 0; r++) {
      const points = POINTS.slice(0, left);
      left -= points.length;
      const record = await rolloutWithKills(plane, machines, rng, `${prefix}-r${r}`, r, prefix, points);
      report.kills.push(...record.kills);
      report.rollouts.push(record.rollout);
      report.problems.push(...record.rollout.problems.map((p) => `${record.rollout.rolloutId}: ${p}`));
      say(
        `rollout ${record.rollout.rolloutId}: ${record.rollout.status ?? 'no result'} after ${record.kills.length} NATS kill(s)${record.rollout.problems.length ? `, ${record.rollout.problems.length} problem(s)` : ''}`,
      );
    }
    report.events = await checkEvents(plane, machines);
    const e = report.events;
    if (e.lost.length > 0)
      report.problems.push(`${e.lost.length} produced event(s) never stored: ${e.lost.join(', ')}`);
    if (e.duplicated.length > 0)
      report.problems.push(
        `${e.duplicated.length} event id(s) stored more than once: ${e.duplicated.join(', ')}`,
      );
    if (e.stepsTwice.length > 0) report.problems.push(`steps stored twice: ${e.stepsTwice.join(', ')}`);
  } finally {
    await Promise.all(machines.map((m) => m.proc.powerOff().catch(() => undefined)));
  }
  report.killsDone = report.kills.length;
  for (const k of report.kills) {
    if (k.agentsWithPlan === AGENTS) report.observed.afterPlanEverywhere++;
    else report.observed.beforePlanEverywhere++;
  }
  report.finishedAt = new Date().toISOString();
  report.loadAtEnd = hostLoad();
  return report;
}

async function rolloutWithKills(
  plane: ControlPlane,
  machines: readonly Machine[],
  rng: Dice,
  rolloutId: string,
  round: number,
  site: string,
  points: readonly NatsKillPoint[],
): Promise<{ rollout: NatsRolloutRecord; kills: NatsKillRecord[] }> {
  const version = `${round + 1}.0.0`;
  const rollout: NatsRolloutRecord = { rolloutId, version, problems: [] };
  const kills: NatsKillRecord[] = [];
  const withPlan = async () =>
    (await Promise.all(machines.map((m) => hasPlan(m, rolloutId)))).filter(Boolean).length;
  const killNats = async (point: NatsKillPoint, delayMs: number) => {
    const downMs = rng.between(MIN_DOWN_MS, MAX_DOWN_MS);
    await sleep(delayMs);
    const agentsWithPlan = await withPlan();
    const at = new Date().toISOString();
    await plane.stack.nats.kill();
    await sleep(downMs);
    await plane.stack.nats.restart();
    kills.push({ rolloutId, point, delayMs, downMs, at, agentsWithPlan });
  };
  try {
    const digest = await publishImage(plane.client, version);
    const handle = await startRollout(plane.client, {
      id: rolloutId,
      image: { type: 'published', digest },
      version,
      selector: `site=${site}`,
      waves: '1,100%',
      maxUnavailable: MAX_UNAVAILABLE,
      timeouts: { accept: '2m', write: '2m', reboot: '2m', health: '1m' },
    });
    for (const point of points) {
      if (point === 'before-plan') {
        await killNats(point, rng.between(0, MAX_BEFORE_DELAY_MS));
      } else {
        const delay = rng.between(0, MAX_AFTER_DELAY_MS);
        const everywhere = await poll(
          180_000,
          async () => ((await withPlan()) === AGENTS ? true : undefined),
          50,
        );
        if (!everywhere) {
          rollout.problems.push('the plan never reached every agent; NATS killed anyway');
        }
        await killNats(point, delay);
      }
    }
    const result = await Promise.race([
      handle.result(),
      sleep(ROLLOUT_WAIT_MS).then(() => {
        throw new Error(`no result in ${ROLLOUT_WAIT_MS} ms`);
      }),
    ]);
    rollout.status = result.status;
    rollout.upgraded = result.counts.upgraded;
    if (result.status !== 'succeeded')
      rollout.problems.push(`ended ${result.status}: ${JSON.stringify(result.nodes)}`);
    if (result.counts.upgraded !== AGENTS)
      rollout.problems.push(`${result.counts.upgraded} of ${AGENTS} nodes upgraded`);
    // The workflows' own events, counted where they were recorded.
    const runs = await rolloutHistories(plane.client, rolloutId);
    const stored = (await rawStreamEvents(plane)).map((e) => String(e.body['id']));
    const recorded = recordedAgainstStored(runs, stored);
    if (recorded.twice.length > 0) rollout.problems.push(`recorded twice: ${recorded.twice.join(', ')}`);
    if (recorded.lost.length > 0)
      rollout.problems.push(`recorded but not stored: ${recorded.lost.join(', ')}`);
  } catch (err) {
    rollout.problems.push(`did not finish: ${(err as Error).message}`);
  }
  return { rollout, kills };
}

/** Waits for every outbox to drain, then holds the ledgers against a raw read of the stream. */
async function checkEvents(
  plane: ControlPlane,
  machines: readonly Machine[],
): Promise<NonNullable<NatsKillReport['events']>> {
  await poll(
    120_000,
    async () => {
      const journals = await Promise.all(machines.map(journalOf));
      return journals.every((j) => j.outbox.length === 0) ? true : undefined;
    },
    250,
  );
  // Relays by peers can lag their own node's publish a little.
  await sleep(2_000);
  const produced = new Set<string>();
  for (const m of machines) {
    const text = await readFile(m.ledger, 'utf8').catch(() => '');
    for (const id of text.split('\n').filter(Boolean)) produced.add(id);
  }
  const raw = await rawStreamEvents(plane);
  const ours = new Set(machines.map((m) => m.nodeId));
  const times = new Map<string, number>();
  const steps = new Map<string, Set<string>>();
  for (const { body } of raw) {
    const id = String(body['id']);
    times.set(id, (times.get(id) ?? 0) + 1);
    const nodeId = body['nodeId'];
    const commandId = body['commandId'];
    if (typeof nodeId === 'string' && ours.has(nodeId) && typeof commandId === 'string') {
      const step = `${commandId}/${String(body['type'])}`;
      const ids = steps.get(step) ?? new Set<string>();
      ids.add(id);
      steps.set(step, ids);
    }
  }
  return {
    produced: produced.size,
    stored: [...produced].filter((id) => times.has(id)).length,
    lost: [...produced].filter((id) => !times.has(id)),
    duplicated: [...produced].filter((id) => (times.get(id) ?? 0) > 1).map((id) => `${id} x${times.get(id)}`),
    stepsTwice: [...steps]
      .filter(([, ids]) => ids.size > 1)
      .map(([step, ids]) => `${step} (${ids.size} ids)`),
  };
}
