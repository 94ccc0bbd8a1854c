// The site loses its control plane mid-rollout: real agent processes on loopback with the
// peer-to-peer fallback on, a real nats-server and Temporal dev server. The nats-server is killed
// after the canary wave; the agents finish the rollout under the signed plan, taking reboot turns
// among themselves; the nats-server comes back, every event reaches JetStream once, the
// projection shows every node's final state and the Temporal rollout completes. One node never
// reaches NATS at all and gets its image from peers only. The mesh is closed: a rogue peer
// without the mesh key cannot connect; one with the key but no enrolment certificate is heard by
// no one (its registration, events and lease reports are dropped at the first hop, no plan pins
// it). A rogue peer's forged command is refused by every agent.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { startRollout } from '../../cli/rollout-client.ts';
import { openEventLog } from '../../eventlog/index.ts';
import { parseJournal } from '../../node-agent/journal.ts';
import type { JournalData } from '../../node-agent/journal-data.ts';
import {
  COMMANDS_TOPIC,
  createMeshKey,
  createP2pNode,
  createSlotflowPeer,
  EVENTS_TOPIC,
  LEASE_TOPIC,
  loadMeshKey,
  meshKeyPath,
  type SlotflowPeer,
} from '../../p2p/index.ts';
import { catchUp, emptyProjection } from '../../projection/index.ts';
import { PLANS_SUBJECTS, SignedPlan, type LeaseReport, type NodeEvent } from '../../schema/index.ts';
import { initKeys, keysDir, loadSigningKey, newNonce, signCommand } from '../../signing/index.ts';
import { pickFreePorts } from '../../stack/index.ts';
import { AgentProcess } from '../agent/agent-process.ts';
import { COMMITTED_UPGRADE } from '../agent/crash-checks.ts';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.ts';
import { preauthorize } from '../helpers/enrol.ts';
import { checkRolloutSends } from '../helpers/histories.ts';
import { publishImage, waitForStatus } from '../helpers/rollouts.ts';
import { cleanupDirs, testLog, tempDir, LOOPBACK } from '../p2p/helpers.ts';
import { tearDown } from '../helpers/teardown.ts';

const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));
const ROLLOUT = 'r-site-cut';
const MAX_UNAVAILABLE = 2;
// p2p-9 is configured with a NATS address where nothing listens: it only ever has its peers.
const NODES = Array.from({ length: 9 }, (_, i) => `p2p-${i + 1}`);
const ISOLATED = 'p2p-9';
// The rogue with the mesh key but no enrolment: it registers itself (on the rollout's selector)
// and claims to be p2p-3; were it heard, the rollout would target it or pin p2p-3 to it.
const ROGUE = 'p2p-rogue';
const IMPERSONATED = 'p2p-3';

interface Machine {
  readonly nodeId: string;
  readonly dataDir: string;
  readonly addr: string;
  readonly metricsPort: number;
  /** The peer id the node's enrolment certificate binds it to. */
  readonly peerId: string;
  proc: AgentProcess;
}

let plane: ControlPlane;
let root: string;
const machines = new Map<string, Machine>();
let rogue: SlotflowPeer | undefined;
let unenrolled: SlotflowPeer | undefined;
let chatter: NodeJS.Timeout | undefined;
let meshKeyFile: string;

async function journalOf(m: Machine): Promise<JournalData> {
  const file = join(m.dataDir, 'journal.json');
  return parseJournal(await readFile(file, 'utf8'), file);
}

async function plansOf(m: Machine): Promise<SignedPlan[]> {
  try {
    return SignedPlan.array().parse(JSON.parse(await readFile(join(m.dataDir, 'plans.json'), 'utf8')));
  } catch {
    return [];
  }
}

function peerIdOf(nodeId: string): string {
  return machines.get(nodeId)!.peerId;
}

async function metricsOf(m: Machine): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${m.metricsPort}/metrics`);
  return res.text();
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
}

/** Keeps every agent's whole log in test-output/ and returns their tails for the failure message. */
async function logTails(): Promise<string> {
  const kept = join(OUTPUT, `p2p-fallback-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  await cp(root, kept, {
    recursive: true,
    filter: (src) => !src.includes('/chunks') && !src.includes('/slots'),
  });
  const parts: string[] = [`(whole logs and data dirs kept in ${kept})`];
  for (const m of machines.values()) {
    const text = await readFile(join(root, `${m.nodeId}.log`), 'utf8').catch(() => '');
    parts.push(`--- ${m.nodeId}\n${text.split('\n').slice(-15).join('\n')}`);
  }
  return parts.join('\n');
}

before(async () => {
  plane = await startControlPlane();
  root = await tempDir('slotflow-p2p-e2e-');
  const ports = await pickFreePorts(NODES.length * 2 + 1);
  const nowhere = ports.pop()!;
  const addrs = NODES.map((_, i) => `/ip4/127.0.0.1/tcp/${ports[i]}`);
  meshKeyFile = meshKeyPath(plane.home);
  await createMeshKey(meshKeyFile);
  for (const [i, nodeId] of NODES.entries()) {
    const dataDir = join(root, 'nodes', nodeId);
    await mkdir(dataDir, { recursive: true });
    const { peerId } = await preauthorize(
      plane.nc,
      await openEventLog(plane.nc),
      plane.home,
      nodeId,
      dataDir,
    );
    const config = {
      p2p: {
        listen: [addrs[i]],
        bootstrap: addrs.filter((_, j) => j !== i),
        allowedNetworks: LOOPBACK,
        natsLossGrace: '2s',
      },
    };
    const configFile = join(root, `${nodeId}.json`);
    await writeFile(configFile, JSON.stringify(config));
    const metricsPort = ports[NODES.length + i]!;
    const args = [
      '--node-id',
      nodeId,
      '--data-dir',
      dataDir,
      '--trusted-keys',
      keysDir(plane.home),
      '--labels',
      'site=cut',
      '--initial-version',
      '1.0.0',
      '--heartbeat-interval',
      '2s',
      '--metrics-listen',
      `127.0.0.1:${metricsPort}`,
      '--config',
      configFile,
      '--mesh-key',
      meshKeyFile,
    ];
    const env = {
      ...process.env,
      ...plane.env,
      NATS_URL: nodeId === ISOLATED ? `nats://127.0.0.1:${nowhere}` : plane.stack.nats.url,
      NODE_COMPILE_CACHE: join(root, 'compile-cache'),
      SLOTFLOW_LOG_LEVEL: 'info',
    };
    const proc = await AgentProcess.start(args, env, join(root, `${nodeId}.log`));
    machines.set(nodeId, { nodeId, dataDir, addr: addrs[i]!, metricsPort, peerId, proc });
  }
});

after(
  async () => {
    await tearDown([
      [
        'stop the rogue peers',
        async () => {
          clearInterval(chatter);
          await Promise.all([rogue?.stop(), unenrolled?.stop()]);
        },
      ],
      ['power off the agents', () => Promise.all([...machines.values()].map((m) => m.proc.powerOff()))],
      ['stop the control plane', async () => plane?.stop()],
      ['remove the temp dirs', () => cleanupDirs()],
    ]);
  },
  { timeout: 120_000 },
);

/** Starts the rogue with the mesh key and no enrolment; it keeps claiming things every second. */
async function startUnenrolledRogue(): Promise<SlotflowPeer> {
  const peer = await createSlotflowPeer({
    nodeId: ROGUE,
    dataDir: await tempDir(),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [...machines.values()].map((m) => m.addr),
    allowedNetworks: LOOPBACK,
    meshKey: await loadMeshKey(meshKeyFile),
    trustedKeys: plane.trustedKeys,
    redialIntervalMs: 500,
    log: testLog(),
  });
  await peer.start();
  const base = { v: 1 as const, labels: { site: 'cut' }, version: '1.0.0', activeSlot: 'a' as const };
  const publish = (topic: string, value: unknown) =>
    peer.node.pubsub.publish(topic, new TextEncoder().encode(JSON.stringify(value))).catch(() => undefined);
  const event = (e: Record<string, unknown>) =>
    publish(EVENTS_TOPIC, { v: 1, event: { id: `evt-${randomUUID()}`, at: new Date().toISOString(), ...e } });
  chatter = setInterval(() => {
    const at = new Date().toISOString();
    void event({
      ...base,
      type: 'NodeRegistered',
      nodeId: ROGUE,
      agentVersion: 'rogue',
      peerId: peer.peerId,
    });
    void event({
      ...base,
      type: 'NodeRegistered',
      nodeId: IMPERSONATED,
      agentVersion: 'rogue',
      peerId: peer.peerId,
    });
    void event({ ...base, type: 'NodeHeartbeat', nodeId: ROGUE, state: 'idle' });
    // Turns "done" for every node: heard, they would let more than maxUnavailable reboot at once.
    for (const nodeId of [ROGUE, ...NODES]) {
      const report: LeaseReport = {
        v: 1,
        type: 'done',
        rolloutId: ROLLOUT,
        nodeId,
        at,
        outcome: 'succeeded',
      };
      void publish(LEASE_TOPIC, report);
    }
  }, 1_000);
  chatter.unref();
  return peer;
}

/** Sum of one metric line over every agent. */
async function total(pattern: RegExp): Promise<number> {
  let sum = 0;
  for (const m of machines.values()) sum += Number(pattern.exec(await metricsOf(m))?.[1] ?? 0);
  return sum;
}

test('p2p e2e - NATS dies after the canary; the site finishes the rollout peer to peer and the control plane learns everything', async () => {
  // Every plan the control plane publishes, to check whom it pins.
  const plans: SignedPlan[] = [];
  const planSub = plane.nc.subscribe(PLANS_SUBJECTS, {
    callback: (err, msg) => {
      if (!err) plans.push(SignedPlan.parse(msg.json()));
    },
  });
  unenrolled = await startUnenrolledRogue();

  // Every node registered, the isolated one through a peer that relays its events.
  const events = await openEventLog(plane.nc);
  await until('nine registered nodes in the projection', 90_000, async () => {
    const p = await catchUp(emptyProjection(), events, { trustedKeys: plane.trustedKeys });
    return NODES.every((n) => p.nodes.has(n)) ? true : undefined;
  });

  // The mesh is closed. The rogue with the key reaches every agent, and every agent drops what it
  // says at the first hop, for it has no enrolment certificate.
  await until('the unenrolled rogue connected to every agent', 30_000, async () =>
    NODES.every((n) => unenrolled!.node.libp2p.getConnections(peerIdFromString(peerIdOf(n))).length > 0)
      ? true
      : undefined,
  );
  await until('the agents rejected the unenrolled rogue’s events and lease reports', 30_000, async () =>
    (await total(/slotflow_p2p_gossip_messages_total\{topic="events",verdict="rejected"\} (\d+)/)) > 0 &&
    (await total(/slotflow_p2p_gossip_messages_total\{topic="lease",verdict="rejected"\} (\d+)/)) > 0 &&
    (await total(/slotflow_p2p_peers_unenrolled_total (\d+)/)) > 0
      ? true
      : undefined,
  );
  // On the same addresses, a peer without the mesh key cannot connect at all.
  const keyless = await createP2pNode({
    dataDir: await tempDir(),
    listen: [],
    allowedNetworks: LOOPBACK,
    openMesh: true,
    log: testLog(),
  });
  await keyless.start();
  try {
    for (const m of machines.values()) {
      await assert.rejects(
        keyless.libp2p.dial(multiaddr(m.addr), { signal: AbortSignal.timeout(3_000) }),
        `${m.nodeId} must refuse a peer without the mesh key`,
      );
    }
    assert.equal(keyless.libp2p.getConnections().length, 0);
  } finally {
    await keyless.stop();
  }
  const digest = await publishImage(plane.client, '2.0.0');

  const handle = await startRollout(plane.client, {
    id: ROLLOUT,
    image: { type: 'published', digest },
    version: '2.0.0',
    selector: 'site=cut',
    waves: '1,3,6,100%',
    maxUnavailable: MAX_UNAVAILABLE,
    timeouts: { accept: '2m', write: '2m', reboot: '2m', health: '1m' },
  });

  // The canary passes, the second wave starts and every agent holds the plan issued for it.
  await waitForStatus(plane.client, ROLLOUT, (s) => s.waves[0]?.status === 'passed', 120_000);
  await until('the plan from wave 1 on at every agent', 60_000, async () => {
    for (const m of machines.values()) {
      const plans = await plansOf(m);
      if (!plans.some((p) => p.plan.rolloutId === ROLLOUT && p.plan.firstWave >= 1)) return undefined;
    }
    return true;
  });
  await plane.stack.nats.kill();
  const killedAt = Date.now();

  // Peer to peer from here: every node ends on 2.0.0 while NATS is down.
  const journals = await until('every node committed 2.0.0 without NATS', 240_000, async () => {
    const all = new Map<string, JournalData>();
    for (const m of machines.values()) {
      const j = await journalOf(m);
      const done = j.handled.find((h) => h.commandId === `${ROLLOUT}:${m.nodeId}:upgrade`);
      if (done?.final.type !== 'UpgradeCommitted' || j.state !== 'idle') return undefined;
      all.set(m.nodeId, j);
    }
    return all;
  }).catch(async (err: unknown) => {
    throw new Error(`${(err as Error).message}\n${await logTails()}`);
  });

  // maxUnavailable from the journals: reboot-to-commit windows of the nodes upgraded in the
  // outage (still in their outboxes, since NATS never acknowledged them) never overlap more.
  const windows: { nodeId: string; from: number; to: number }[] = [];
  const outboxed = new Map<string, NodeEvent>();
  for (const [nodeId, j] of journals) {
    for (const e of j.outbox) outboxed.set(e.id, e);
    const mine = j.outbox.filter((e) => 'rolloutId' in e && e.rolloutId === ROLLOUT);
    const rebooting = mine.find((e) => e.type === 'NodeRebooting');
    const committed = mine.find((e) => e.type === 'UpgradeCommitted');
    if (rebooting && committed) {
      windows.push({ nodeId, from: Date.parse(rebooting.at), to: Date.parse(committed.at) });
    }
  }
  assert.ok(windows.length >= 4, `at least the last two waves rebooted during the outage: ${windows.length}`);
  assert.ok(windows.every((w) => w.from > killedAt - 60_000));
  const edges = windows
    .flatMap((w) => [
      { at: w.from, d: 1 },
      { at: w.to, d: -1 },
    ])
    .sort((a, b) => a.at - b.at || a.d - b.d);
  let inFlight = 0;
  let most = 0;
  for (const e of edges) most = Math.max(most, (inFlight += e.d));
  if (most > MAX_UNAVAILABLE) {
    const spans = windows.map((w) => `${w.nodeId} ${w.from - killedAt}..${w.to - killedAt} ms`).join(', ');
    assert.fail(
      `at most ${MAX_UNAVAILABLE} nodes rebooting at once, saw ${most}: ${spans}\n${await logTails()}`,
    );
  }

  // The isolated node fetched its image from peers, verified.
  const isolated = journals.get(ISOLATED)!;
  const fetched = [...isolated.outbox].find(
    (e) => e.type === 'ArtifactFetched' && e.rolloutId === ROLLOUT,
  ) as Extract<NodeEvent, { type: 'ArtifactFetched' }> | undefined;
  assert.equal(fetched?.source, 'p2p');
  assert.equal(fetched?.digest, digest);

  // NATS is back: outboxes drain, the workflow completes.
  await plane.stack.nats.restart();
  const result = await handle.result();
  assert.equal(result.status, 'succeeded', JSON.stringify(result.nodes));
  assert.equal(result.counts.upgraded, NODES.length);

  // Nothing lost: every event the journals held reached JetStream. Nothing done twice, counted
  // per step rather than per id: peers relay each event several times and the stream keeps one
  // copy per id, so an id count could never fail, while a step taken twice has two ids.
  const fresh = await openEventLog(plane.nc);
  const stored = await until('the outboxes drained', 60_000, async () => {
    const all: NodeEvent[] = [];
    for await (const e of fresh.replay()) if ('nodeId' in e.event) all.push(e.event as NodeEvent);
    const ids = new Set(all.map((e) => e.id));
    return [...outboxed.keys()].every((id) => ids.has(id)) ? all : undefined;
  });
  for (const nodeId of NODES) {
    const commandId = `${ROLLOUT}:${nodeId}:upgrade`;
    const steps = stored.filter((e) => 'commandId' in e && e.commandId === commandId).map((e) => e.type);
    assert.deepEqual(steps.sort(), [...COMMITTED_UPGRADE].sort(), `${nodeId}: each upgrade step stored once`);
  }
  // Commands are counted where the workflows sent them: a node that finished peer to peer before
  // its workflow started is sent nothing, any other exactly one Upgrade.
  const { sent } = await checkRolloutSends(plane.client, plane.nc, ROLLOUT);
  for (const [nodeId, commands] of sent) {
    assert.ok(NODES.includes(nodeId), `${nodeId} is a target`);
    assert.deepEqual(commands, ['Upgrade'], `the workflows sent ${nodeId} one command`);
  }

  // The projection shows every node's final state.
  const projection = await catchUp(emptyProjection(), fresh, { trustedKeys: plane.trustedKeys });
  const view = projection.rollouts.get(ROLLOUT);
  assert.equal(view?.status, 'succeeded');
  for (const nodeId of NODES) {
    assert.equal(projection.nodes.get(nodeId)?.version, '2.0.0', nodeId);
    assert.equal(view?.nodes[nodeId]?.outcome, 'upgraded', nodeId);
  }
  // Both mode changes are on record for a node that was cut off, and the isolated one went p2p.
  const modes = (nodeId: string) =>
    [...outboxed.values()].filter((e) => e.type === 'NodeModeChanged' && e.nodeId === nodeId) as Extract<
      NodeEvent,
      { type: 'NodeModeChanged' }
    >[];
  assert.ok(modes('p2p-2').some((e) => e.mode === 'p2p'));
  assert.ok(modes(ISOLATED).some((e) => e.mode === 'p2p'));

  // The unenrolled rogue left no trace: none of its claims was relayed, the projection does not
  // know it, p2p-3 keeps its own peer, and every plan pins only the peers certificates vouch for.
  const rogueId = unenrolled!.peerId;
  assert.deepEqual(
    stored.filter((e) => e.nodeId === ROGUE || ('peerId' in e && e.peerId === rogueId)).map((e) => e.id),
    [],
  );
  assert.equal(projection.nodes.has(ROGUE), false);
  assert.equal(projection.nodes.get(IMPERSONATED)?.peerId, peerIdOf(IMPERSONATED));
  planSub.unsubscribe();
  const ours = plans.filter((p) => p.plan.rolloutId === ROLLOUT);
  assert.ok(ours.length > 0, 'the rollout published plans');
  for (const { plan } of ours) {
    assert.deepEqual(
      plan.peerIds,
      Object.fromEntries(plan.waves.flat().map((n) => [n, peerIdOf(n)])),
      `plan from wave ${plan.firstWave} pins each node to its enrolled peer`,
    );
  }
});

test('p2p e2e - a command forged by a rogue peer is refused by every agent', async () => {
  const home = await tempDir('slotflow-rogue-');
  await initKeys(home);
  const rogueKey = await loadSigningKey(home);
  const trusted = await loadSigningKey(plane.home);
  rogue = await createSlotflowPeer({
    nodeId: 'rogue',
    dataDir: await tempDir(),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [...machines.values()].map((m) => m.addr),
    allowedNetworks: LOOPBACK,
    meshKey: await loadMeshKey(meshKeyFile),
    // It checks what it hears as an agent would; with its own key as the only trusted one it
    // would reject the agents' gossip and stop publishing to them (gossipsub scores).
    trustedKeys: plane.trustedKeys,
    redialIntervalMs: 500,
    log: testLog(),
  });
  await rogue.start();
  await until('the rogue peer connected to every agent', 30_000, async () =>
    rogue!.node.libp2p.getPeers().length >= machines.size &&
    rogue!.node.pubsub.getSubscribers(COMMANDS_TOPIC).length >= machines.size
      ? true
      : undefined,
  );
  const before = new Map<string, number>();
  const rejected = (text: string) =>
    Number(
      /slotflow_p2p_gossip_messages_total\{topic="commands",verdict="rejected"\} (\d+)/.exec(text)?.[1] ?? 0,
    );
  for (const m of machines.values()) before.set(m.nodeId, rejected(await metricsOf(m)));

  // Signed with the rogue's key but claiming the control plane's key id.
  const now = Date.now();
  const forged = signCommand(
    {
      v: 1,
      type: 'Rollback',
      commandId: 'r-rogue:p2p-1:rollback',
      nonce: newNonce(),
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 600_000).toISOString(),
      nodeId: 'p2p-1',
      rolloutId: 'r-rogue',
    },
    rogueKey,
  );
  const message = { v: 1, type: 'command', signed: { ...forged, keyId: trusted.keyId } };
  await rogue.node.pubsub.publish(COMMANDS_TOPIC, new TextEncoder().encode(JSON.stringify(message)));

  for (const m of machines.values()) {
    await until(`${m.nodeId} rejected the forged command`, 20_000, async () =>
      rejected(await metricsOf(m)) > before.get(m.nodeId)! ? true : undefined,
    );
  }
  const target = await journalOf(machines.get('p2p-1')!);
  assert.equal(
    target.handled.find((h) => h.commandId === 'r-rogue:p2p-1:rollback'),
    undefined,
  );
  assert.equal(target.op, null);
});
