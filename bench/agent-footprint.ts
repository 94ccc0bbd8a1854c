// The light node agent's figures (not a test): resident memory idle without and with P2P, the
// peak while it writes a 256 MiB slot against its own idle, and the time from starting the
// process to its NodeRegistered event in the stream. Real agent processes (the bundle a slot
// runs, built by lab/agent-bundle.ts, with the flags it runs with) against a real nats-server.
//
//   node bench/agent-footprint.ts [--json] [--quick]
//
// Prints one JSON document `{ figures }` on stdout (bench/external.ts has the contract). Every
// figure carries the load average (as `uptime` prints it) at its start and end; a measurement
// that fails or is cut off is reported as not measured, never as met.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { cp, mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { Objm } from '@nats-io/obj';
import { DEFAULT_CHUNK_SIZE, manifestOf } from '../activities/builders/manifest.ts';
import { openEventLog, type EventLog } from '../eventlog/index.ts';
import { AGENT_NODE_FLAGS, bundleCli } from '../lab/agent-bundle.ts';
import { createMeshKey, meshKeyPath } from '../p2p/mesh-key.ts';
import { IMAGES_BUCKET, commandSubject, nodeEventsFilter } from '../schema/index.ts';
import {
  initKeys,
  keysDir,
  loadSigningKey,
  newNonce,
  signCommand,
  type SigningKey,
} from '../signing/index.ts';
import { preauthorize } from '../test/helpers/enrol.ts';
import { startNats, type NatsHandle } from '../test/helpers/servers.ts';
import { agentFootprintFigures } from './external.ts';
import { measured, notMeasured, round, type Figure, type FigureSpec } from './figure.ts';
import { bareNodeRss, mib, rssOf } from './rss.ts';

const MiB = 1024 * 1024;
const REPO = fileURLToPath(new URL('..', import.meta.url));
const WRITE_SIZE = 256 * MiB;
const spec = (id: string): FigureSpec => agentFootprintFigures.find((f) => f.id === id)!;
const say = (line: string) => process.stderr.write(`agent-footprint: ${line}\n`);
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/** The 1, 5 and 15 minute load averages, as `uptime` shows them. */
const load = () => loadavg().map((l) => round(l, 2));

/** What every agent of this bench shares: the server, the control plane's key, the bundle. */
interface Bench {
  readonly work: string;
  readonly nats: NatsHandle;
  readonly nc: NatsConnection;
  readonly log: EventLog;
  readonly home: string;
  readonly key: SigningKey;
  readonly main: string;
  readonly procs: Set<ChildProcess>;
}

/** One agent process, in its own process group. */
interface Agent {
  readonly nodeId: string;
  readonly pid: number;
  readonly dataDir: string;
  readonly startedAt: number;
  /** Resolves with the local time NodeRegistered was read from the stream. */
  readonly registered: Promise<number>;
  stop(): Promise<void>;
}

let nodes = 0;

/** Starts the bundled agent (`node <flags> dist/main.js agent …`), enrolled, as a slot does. */
async function startAgent(b: Bench, extraArgs: readonly string[] = []): Promise<Agent> {
  const nodeId = `footprint-${++nodes}`;
  const dataDir = join(b.work, 'nodes', nodeId);
  await mkdir(dataDir, { recursive: true });
  await preauthorize(b.nc, b.log, b.home, nodeId, dataDir);
  const abort = new AbortController();
  const registered = (async () => {
    for await (const e of b.log.follow({ filters: [nodeEventsFilter(nodeId)], signal: abort.signal })) {
      if (e.event.type === 'NodeRegistered') return Date.now();
    }
    throw new Error(`${nodeId}: the event stream ended before NodeRegistered`);
  })();
  const logFile = await open(join(b.work, `${nodeId}.log`), 'w');
  const startedAt = Date.now();
  const child = spawn(
    process.execPath,
    [
      ...AGENT_NODE_FLAGS,
      b.main,
      'agent',
      '--node-id',
      nodeId,
      '--data-dir',
      dataDir,
      '--trusted-keys',
      keysDir(b.home),
      // A lab machine: the file driver with a `true` reboot never boots the trial, which a real
      // node refuses; this bench only measures the agent up to the written slot.
      '--reboot',
      'command',
      '--reboot-command',
      'true',
      ...extraArgs,
    ],
    {
      detached: true,
      stdio: ['ignore', logFile.fd, logFile.fd],
      env: {
        ...process.env,
        NATS_URL: b.nats.url,
        SLOTFLOW_HOME: b.home,
        SLOTFLOW_LOG_LEVEL: 'warn',
        SLOTFLOW_LAB: '1',
      },
    },
  );
  b.procs.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => logFile.close());
  if (child.pid === undefined) throw new Error(`${nodeId}: the agent process did not start`);
  const pid = child.pid;
  return {
    nodeId,
    pid,
    dataDir,
    startedAt,
    registered: Promise.race([
      registered,
      exited.then(async () => {
        const tail = (await readFile(join(b.work, `${nodeId}.log`), 'utf8').catch(() => '')).slice(-1_000);
        throw new Error(`${nodeId}: the agent exited before it registered: ${tail}`);
      }),
      sleep(60_000).then(() => {
        throw new Error(`${nodeId}: no NodeRegistered within 60 s`);
      }),
    ]),
    async stop() {
      abort.abort();
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone already
      }
      await exited;
      b.procs.delete(child);
    },
  };
}

/** Median RSS of an idle agent: registered, then settled, then sampled. */
async function idleRss(agent: Agent, settleMs: number): Promise<{ median: number; samples: number[] }> {
  await agent.registered;
  await sleep(settleMs);
  const samples: number[] = [];
  for (let i = 0; i < 8; i++, await sleep(250)) {
    const rss = await rssOf(agent.pid);
    if (rss === undefined) throw new Error(`${agent.nodeId}: the agent process is gone`);
    samples.push(rss);
  }
  return { median: median(samples), samples };
}

/** Runs one figure's measurement with the load around it; a throw makes it not measured. */
async function figure(
  id: string,
  measure: () => Promise<{ value: number; baseline: number; unit: string; details: Record<string, unknown> }>,
): Promise<Figure> {
  const loadBefore = load();
  try {
    const m = await measure();
    return measured(
      spec(id),
      { amount: m.unit === 'MiB' ? mib(m.value) : round(m.value, 1), unit: m.unit },
      { amount: m.unit === 'MiB' ? mib(m.baseline) : round(m.baseline, 1), unit: m.unit },
      { details: { ...m.details, loadAverage: { start: loadBefore, end: load() } } },
    );
  } catch (err) {
    say(`${id} not measured: ${(err as Error).message}`);
    return notMeasured(spec(id), 'failed', (err as Error).message, {
      loadAverage: { start: loadBefore, end: load() },
    });
  }
}

async function randomImage(path: string, size: number): Promise<void> {
  const file = await open(path, 'w');
  try {
    for (let at = 0; at < size; at += 16 * MiB) await file.write(randomBytes(Math.min(16 * MiB, size - at)));
  } finally {
    await file.close();
  }
}

/** Idle RSS, then the peak while the agent fetches, verifies and writes a 256 MiB image. */
async function writePeak(b: Bench, settleMs: number): Promise<{ idle: Figure; peak: Figure }> {
  let idle: { median: number; samples: number[] } | undefined;
  let agent: Agent | undefined;
  const bare = await bareNodeRss();
  try {
    const idleFigure = await figure('agent-rss-idle-light', async () => {
      agent = await startAgent(b);
      idle = await idleRss(agent, settleMs);
      return {
        value: idle.median,
        baseline: 64 * MiB,
        unit: 'MiB',
        details: {
          samplesMiB: idle.samples.map(mib),
          bareNodeMiB: mib(bare),
          agent: `node ${AGENT_NODE_FLAGS.join(' ')} dist/main.js agent --reboot command (the slot's bundle)`,
        },
      };
    });
    const peakFigure = await figure('agent-rss-write-peak', async () => {
      if (!agent || !idle) throw new Error('no idle agent to measure (its idle figure failed)');
      const image = join(b.work, 'image.img');
      await randomImage(image, WRITE_SIZE);
      const manifest = await manifestOf(image, { format: 'raw', version: '2.0.0' }, DEFAULT_CHUNK_SIZE);
      const os = await new Objm(b.nc).create(IMAGES_BUCKET);
      await os.put(
        { name: manifest.digest },
        Readable.toWeb(createReadStream(image)) as ReadableStream<Uint8Array>,
      );
      // Settled again after the bench's own work, so the ratio is against this process at rest.
      const before = await idleRss(agent, 1_000);
      const now = Date.now();
      const signed = signCommand(
        {
          v: 1,
          type: 'Upgrade',
          commandId: `r-footprint:${agent.nodeId}:upgrade`,
          rolloutId: 'r-footprint',
          nodeId: agent.nodeId,
          nonce: newNonce(),
          issuedAt: new Date(now).toISOString(),
          expiresAt: new Date(now + 600_000).toISOString(),
          image: { type: 'artifact', manifest },
          manifestDigest: manifest.digest,
        },
        b.key,
      );
      await jetstream(b.nc).publish(commandSubject(agent.nodeId), JSON.stringify(signed), {
        msgID: signed.command.commandId,
      });
      let peak = 0;
      const started = Date.now();
      for (;;) {
        const rss = await rssOf(agent.pid);
        if (rss === undefined) throw new Error(`${agent.nodeId}: the agent died during the write`);
        peak = Math.max(peak, rss);
        const meta = await readFile(join(agent.dataDir, 'slots', 'b.json'), 'utf8').catch(() => '');
        if (meta.includes(manifest.digest)) break;
        if (Date.now() - started > 10 * 60_000)
          throw new Error('the agent did not write the image within 10 minutes');
        await sleep(25);
      }
      const written = createHash('sha256')
        .update(await readFile(join(agent.dataDir, 'slots', 'b.img')))
        .digest('hex');
      if (`sha256:${written}` !== manifest.digest) throw new Error('slot b does not hold the image');
      await rm(image, { force: true });
      return {
        value: peak,
        baseline: before.median,
        unit: 'MiB',
        details: {
          imageMiB: WRITE_SIZE / MiB,
          seconds: round((Date.now() - started) / 1000, 1),
          idleBeforeMiB: before.samples.map(mib),
        },
      };
    });
    return { idle: idleFigure, peak: peakFigure };
  } finally {
    await agent?.stop();
  }
}

/** Idle RSS of an agent with the mesh on (listening on loopback, no peers). */
async function p2pIdle(b: Bench, settleMs: number): Promise<Figure> {
  let agent: Agent | undefined;
  try {
    return await figure('agent-rss-idle-p2p', async () => {
      agent = await startAgent(b, ['--p2p-listen', '/ip4/127.0.0.1/tcp/0']);
      const idle = await idleRss(agent, settleMs);
      return {
        value: idle.median,
        baseline: 120 * MiB,
        unit: 'MiB',
        details: { samplesMiB: idle.samples.map(mib), listen: '/ip4/127.0.0.1/tcp/0' },
      };
    });
  } finally {
    await agent?.stop();
  }
}

/** Process start to NodeRegistered read from the stream, a fresh agent each time; the median. */
async function startup(b: Bench, runs: number): Promise<Figure> {
  return figure('agent-startup', async () => {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const agent = await startAgent(b);
      try {
        times.push((await agent.registered) - agent.startedAt);
      } finally {
        await agent.stop();
      }
    }
    return {
      value: median(times),
      baseline: 1_000,
      unit: 'ms',
      details: {
        samplesMs: times,
        runs,
        from: 'spawn of the agent process',
        to: 'NodeRegistered read from SLOTFLOW_EVENTS',
      },
    };
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { json: { type: 'boolean' }, quick: { type: 'boolean' } } });
  const quick = values.quick === true;
  // The slot directory is where a data dir lives (not tmpfs, which has no O_DIRECT).
  const base = process.env['SLOTFLOW_BENCH_DIR'] ?? tmpdir();
  await mkdir(base, { recursive: true });
  const work = await mkdtemp(join(base, 'slotflow-agent-footprint-'));
  const procs = new Set<ChildProcess>();
  process.once('exit', () => {
    for (const p of procs) if (p.pid !== undefined) process.kill(-p.pid, 'SIGKILL');
  });
  let nats: NatsHandle | undefined;
  const figures: Figure[] = [];
  try {
    say('bundling the agent as a slot carries it (lab/agent-bundle.ts)');
    await bundleCli(REPO, join(work, 'dist'));
    // The agent reads its version from the package.json beside its modules' folder.
    await cp(join(REPO, 'package.json'), join(work, 'package.json'));
    nats = await startNats();
    const nc = await nats.connect();
    const home = join(work, 'home');
    await initKeys(home);
    await createMeshKey(meshKeyPath(home));
    const b: Bench = {
      work,
      nats,
      nc,
      log: await openEventLog(nc),
      home,
      key: await loadSigningKey(home),
      main: join(work, 'dist', 'main.js'),
      procs,
    };
    const settleMs = quick ? 3_000 : 5_000;
    say('start-up to NodeRegistered');
    figures.push(await startup(b, quick ? 3 : 7));
    say('idle without P2P, then a 256 MiB slot write');
    const { idle, peak } = await writePeak(b, settleMs);
    figures.push(idle);
    say('idle with P2P');
    figures.push(await p2pIdle(b, settleMs), peak);
    await nc.close();
  } catch (err) {
    say(`failed: ${(err as Error).stack ?? String(err)}`);
    for (const f of agentFootprintFigures) {
      if (!figures.some((m) => m.id === f.id)) figures.push(notMeasured(f, 'failed', (err as Error).message));
    }
  } finally {
    for (const p of procs) if (p.pid !== undefined) process.kill(-p.pid, 'SIGKILL');
    await nats?.stop();
    await rm(work, { recursive: true, force: true });
  }
  process.stdout.write(`${JSON.stringify({ figures }, null, values.json ? 0 : 2)}\n`);
}

await main();
