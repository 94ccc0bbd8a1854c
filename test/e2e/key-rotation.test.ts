// The control-plane key is rotated in the middle of a rollout: real agent processes, a real
// nats-server and Temporal dev server, the CLI's `keys rotate` and `keys revoke`. The canary is
// upgraded under the old key; the rotation is announced in a command the old key signs; after
// the overlap the worker signs the next wave with the new key and the rollout completes. Every
// agent, including one that never restarts, has the new key in its trusted-keys file; after the
// old key is revoked, a command signed with it is refused as revoked.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream } from '@nats-io/jetstream';
import { startRollout } from '../../cli/rollout-client.ts';
import { openEventLog } from '../../eventlog/index.ts';
import { catchUp, emptyProjection } from '../../projection/index.ts';
import { controlPlaneTrustedKeys } from '../../trust/index.ts';
import {
  AgentTrustFile,
  COMMANDS_STREAM,
  SignedCommand,
  commandSubject,
  type NodeEvent,
} from '../../schema/index.ts';
import { keysDir, loadSigningKey, newNonce, signCommand, type SigningKey } from '../../signing/index.ts';
import { AgentProcess } from '../agent/agent-process.ts';
import { runCli } from '../helpers/cli.ts';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.ts';
import { preauthorize } from '../helpers/enrol.ts';
import { tearDown } from '../helpers/teardown.ts';
import { publishImage, waitForStatus } from '../helpers/rollouts.ts';
import { cleanupDirs, tempDir } from '../p2p/helpers.ts';

const ROLLOUT = 'r-rotate';
const IN_ROLLOUT = ['kr-1', 'kr-2', 'kr-3'];
// Not targeted: it never reboots, so whatever it learns, it learns while running.
const BYSTANDER = 'kr-4';
const NODES = [...IN_ROLLOUT, BYSTANDER];

let plane: ControlPlane;
let root: string;
const agents: AgentProcess[] = [];
const starts = new Map<string, { args: string[]; env: NodeJS.ProcessEnv }>();

const dataDir = (nodeId: string) => join(root, 'nodes', nodeId);

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
}

async function nodeEvents(): Promise<NodeEvent[]> {
  const log = await openEventLog(plane.nc);
  const out: NodeEvent[] = [];
  for await (const e of log.replay()) if ('nodeId' in e.event) out.push(e.event as NodeEvent);
  return out;
}

async function trustFile(nodeId: string): Promise<AgentTrustFile> {
  return AgentTrustFile.parse(JSON.parse(await readFile(join(dataDir(nodeId), 'trusted-keys.json'), 'utf8')));
}

/** Every command the control plane put on the commands stream, in order. */
async function sentCommands(): Promise<SignedCommand[]> {
  const js = jetstream(plane.nc);
  const consumer = await js.consumers.get(COMMANDS_STREAM);
  const out: SignedCommand[] = [];
  for (;;) {
    const m = await consumer.next({ expires: 1_000 });
    if (!m) return out;
    out.push(SignedCommand.parse(m.json()));
    if (m.info.pending === 0) return out;
  }
}

before(async () => {
  plane = await startControlPlane();
  root = await tempDir('slotflow-rotate-');
  // The agents' bootstrap trust: a copy of the first public key, nothing the rotation adds later.
  const bootstrap = join(root, 'bootstrap');
  await mkdir(bootstrap, { recursive: true });
  await copyFile(join(keysDir(plane.home), 'control-plane.pub'), join(bootstrap, 'control-plane.pub'));
  const log = await openEventLog(plane.nc);
  for (const nodeId of NODES) {
    await mkdir(dataDir(nodeId), { recursive: true });
    await preauthorize(plane.nc, log, plane.home, nodeId, dataDir(nodeId));
    const args = [
      ...['--node-id', nodeId, '--data-dir', dataDir(nodeId), '--trusted-keys', bootstrap],
      ...['--labels', nodeId === BYSTANDER ? 'site=idle' : 'site=kr', '--initial-version', '1.0.0'],
      ...['--heartbeat-interval', '2s'],
    ];
    const env = { ...process.env, ...plane.env, NODE_COMPILE_CACHE: join(root, 'compile-cache') };
    starts.set(nodeId, { args, env });
    agents.push(await AgentProcess.start(args, env, join(root, `${nodeId}.log`)));
  }
});

after(
  async () => {
    await tearDown([
      ['power off the agents', () => Promise.all(agents.map((a) => a.powerOff()))],
      ['stop the control plane', async () => plane?.stop()],
      ['remove the temp dirs', () => cleanupDirs()],
    ]);
  },
  { timeout: 120_000 },
);

test('key rotation e2e - rotate mid-rollout, the rollout completes under the new key, then the old key is refused', async () => {
  await until('four registered agents', 90_000, async () => {
    const registered = new Set(
      (await nodeEvents()).filter((e) => e.type === 'NodeRegistered').map((e) => e.nodeId),
    );
    return NODES.every((n) => registered.has(n)) ? true : undefined;
  });
  const digest = await publishImage(plane.client, '2.0.0');
  const oldKey: SigningKey = await loadSigningKey(plane.home);

  // The canary goes first under the old key; the next wave waits for approval.
  await startRollout(plane.client, {
    id: ROLLOUT,
    image: { type: 'published', digest },
    version: '2.0.0',
    selector: 'site=kr',
    waves: '1,100%',
    maxUnavailable: 1,
    approveWaves: true,
    timeouts: { accept: '1m', write: '1m', reboot: '1m', health: '1m' },
  });
  await waitForStatus(plane.client, ROLLOUT, (s) => s.status === 'awaiting-approval', 120_000);

  const rotated = await runCli(['keys', 'rotate', '--overlap', '2s', '--json'], plane.env);
  assert.equal(rotated.code, 0, rotated.stderr);
  const rotation = JSON.parse(rotated.stdout) as {
    keyId: string;
    announcedBy: string;
    signsFrom: string;
    nodes: string[];
  };
  assert.equal(rotation.announcedBy, oldKey.keyId, 'the new key is announced under the old one');
  assert.deepEqual(rotation.nodes, NODES);

  // Every agent trusts the new key, written to its data dir, without a restart.
  await until('the new key in every trusted-keys file', 30_000, async () => {
    for (const nodeId of NODES) {
      if (!(await trustFile(nodeId)).trusted.some((t) => t.keyId === rotation.keyId)) return undefined;
    }
    return true;
  });
  await sleep(Math.max(0, Date.parse(rotation.signsFrom) - Date.now() + 200));
  const approved = await runCli(['rollout', 'approve', ROLLOUT], plane.env);
  assert.equal(approved.code, 0, approved.stderr);
  const done = await waitForStatus(
    plane.client,
    ROLLOUT,
    (s) => ['succeeded', 'failed'].includes(s.status),
    180_000,
  );
  assert.equal(done.status, 'succeeded', JSON.stringify(done.nodes));

  const upgrades = (await sentCommands()).filter((c) => c.command.type === 'Upgrade');
  const signer = Object.fromEntries(upgrades.map((c) => [c.command.nodeId, c.keyId]));
  const canary = done.waves[0]!.nodeIds[0]!;
  assert.equal(signer[canary], oldKey.keyId, 'the canary was sent before the rotation');
  for (const nodeId of done.waves[1]!.nodeIds) {
    assert.equal(signer[nodeId], rotation.keyId, `${nodeId} was sent after the overlap, under the new key`);
  }
  // The committed version is each upgraded node's new floor.
  for (const nodeId of IN_ROLLOUT) {
    const floor = JSON.parse(await readFile(join(dataDir(nodeId), 'version-floor.json'), 'utf8')) as {
      version: string;
    };
    assert.equal(floor.version, '2.0.0');
  }

  const revoked = await runCli(['keys', 'revoke', oldKey.keyId, '--json'], plane.env);
  assert.equal(revoked.code, 0, revoked.stderr);
  const retirement = JSON.parse(revoked.stdout) as { signedBy: string; recertified: string[] };
  assert.equal(retirement.signedBy, rotation.keyId);
  // Every node was enrolled under the old key: each gets a certificate from the new one.
  assert.deepEqual(retirement.recertified, [...NODES].sort());
  await until('the old key revoked in every trusted-keys file', 30_000, async () => {
    for (const nodeId of NODES) {
      if (!(await trustFile(nodeId)).revoked.some((r) => r.keyId === oldKey.keyId)) return undefined;
    }
    return true;
  });

  // A command the old key signs (a leaked key, say) is refused from now on.
  const now = Date.now();
  const forged = signCommand(
    {
      v: 1,
      type: 'Rollback',
      commandId: `${ROLLOUT}:${BYSTANDER}:rollback`,
      nonce: newNonce(),
      issuedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + 600_000).toISOString(),
      nodeId: BYSTANDER,
      rolloutId: ROLLOUT,
    },
    oldKey,
  );
  await jetstream(plane.nc).publish(commandSubject(BYSTANDER), JSON.stringify(forged), {
    msgID: `revoked-${now}`,
  });
  const refusal = await until('the refusal of the old key', 30_000, async () =>
    (await nodeEvents()).find(
      (e): e is Extract<NodeEvent, { type: 'UpgradeCommandRejected' }> =>
        e.type === 'UpgradeCommandRejected' && e.nodeId === BYSTANDER,
    ),
  );
  assert.equal(refusal.reason, 'revoked-key', refusal.message);
  assert.match(refusal.message, new RegExp(`revoked key ${oldKey.keyId}`));

  // The log read from the start, as a new worker or `slotflow fleet` reads it, knowing the old
  // key only as retired: what it signed before its retirement still counts, so every node and
  // its upgrade are there and no event is refused.
  const refusals: string[] = [];
  const replayed = await catchUp(emptyProjection(), await openEventLog(plane.nc), {
    trustedKeys: await controlPlaneTrustedKeys(plane.home, { retired: true }),
    onRefused: (r) => refusals.push(`${r.seq} ${r.reason}: ${r.message}`),
  });
  assert.deepEqual(refusals, []);
  for (const nodeId of IN_ROLLOUT) assert.equal(replayed.nodes.get(nodeId)?.version, '2.0.0', nodeId);
  assert.equal(replayed.trust.retiredKeys.has(oldKey.keyId), true);

  // A node restarted after the revocation refuses its stored certificate (the old key signed it)
  // and picks up the re-issued one; its events keep being accepted.
  const bystander = starts.get(BYSTANDER)!;
  await agents[NODES.indexOf(BYSTANDER)]!.stop();
  agents[NODES.indexOf(BYSTANDER)] = await AgentProcess.start(
    bystander.args,
    bystander.env,
    join(root, `${BYSTANDER}-restarted.log`),
  );
  await until('the re-issued certificate on the restarted node', 60_000, async () => {
    const cert = JSON.parse(await readFile(join(dataDir(BYSTANDER), 'enrolment.json'), 'utf8')) as {
      issuer: { keyId: string };
    };
    return cert.issuer.keyId === rotation.keyId ? true : undefined;
  });
  const restartedAt = Date.now();
  await until('a heartbeat of the restarted node in the projection', 60_000, async () => {
    const view = (
      await catchUp(emptyProjection(), await openEventLog(plane.nc), {
        trustedKeys: await controlPlaneTrustedKeys(plane.home, { retired: true }),
      })
    ).nodes.get(BYSTANDER);
    return view && Date.parse(view.lastSeenAt) > restartedAt ? true : undefined;
  });
});
