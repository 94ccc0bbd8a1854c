// End to end through the CLI only, as an operator would: stack up, keys, a worker and real agents,
// an image build, rollouts with --wait --json (one that waits for approval, is approved and
// succeeds, one that rolls back), then
// stack down with nothing left running.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createProcessGroup, type ProcessGroup } from '../../demo/processes.ts';
import { writeDemoRootfs } from '../../demo/rootfs.ts';
import { loadConnectionConfig } from '../../runtime/config.ts';
import { connectNats } from '../../runtime/nats.ts';
import { isAlive } from '../../stack/pids.ts';
import { runCli } from '../helpers/cli.ts';
import { preauthorizeAgent, startE2eControlPlane, waitForFleet } from '../helpers/e2e-stack.ts';

let home: string;
let env: Record<string, string>;
let group: ProcessGroup;
const stackDir = () => join(home, 'stack');

before(async () => {
  home = await mkdtemp(join(tmpdir(), 'slotflow-e2e-'));
  env = { SLOTFLOW_HOME: home, SLOTFLOW_LOG_LEVEL: 'warn' };
  group = createProcessGroup();
});
after(async () => {
  await group?.stopAll();
  await runCli(['stack', 'down', '--data-dir', stackDir()], env);
  await rm(home, { recursive: true, force: true });
});

test('e2e - from stack up to finished rollouts, driven only through the CLI', async () => {
  const stack = await startE2eControlPlane(stackDir(), env, group, home);
  const natsCreds = new Map<string, string>();
  for (const [i, nodeId] of ['e2e-1', 'e2e-2', 'e2e-3', 'e2e-4'].entries()) {
    const args = [
      'agent',
      '--node-id',
      nodeId,
      '--data-dir',
      join(home, 'agents', nodeId),
      '--labels',
      `site=e2e,slot=${i}`,
      '--slot-driver',
      'file',
      '--reboot',
      'simulate',
      '--trusted-keys',
      join(home, 'keys'),
      '--initial-version',
      '1.0.0',
    ];
    if (nodeId === 'e2e-4') args.push('--health-check', 'app-ready=false');
    // Enrolment on a secured stack hands the node NATS credentials that speak only for it.
    const enrolled = await preauthorizeAgent(env, nodeId, join(home, 'agents', nodeId));
    assert.ok(enrolled.natsCreds, `${nodeId} got NATS credentials with its enrolment`);
    natsCreds.set(nodeId, enrolled.natsCreds);
    group.start(nodeId, args, { ...env, NATS_CREDS: enrolled.natsCreds }, join(home, `${nodeId}.log`));
  }
  await waitForFleet(env, 4);

  const rootfs = await writeDemoRootfs(join(home, 'rootfs'), '2.0.0');
  const built = await runCli(
    ['image', 'build', '--rootfs', rootfs, '--version', '2.0.0', '--json'],
    env,
    300_000,
  );
  assert.equal(built.code, 0, built.stderr);
  const digest = (JSON.parse(built.stdout) as { manifest: { digest: string } }).manifest.digest;

  const ok = await runCli(
    [
      'rollout',
      'start',
      '--id',
      'e2e-ok',
      '--image',
      digest,
      '--version',
      '2.0.0',
      '--selector',
      'site=e2e,slot!=3',
      '--waves',
      '1,100%',
      '--max-unavailable',
      '2',
      '--approve-waves',
      '--wait',
      '--json',
    ],
    env,
    300_000,
  );
  // The canary passes and the next wave waits for approval: the wait returns, naming it.
  assert.equal(ok.code, 3, `a rollout that waits for an operator exits 3: ${ok.stderr}`);
  const waiting = JSON.parse(ok.stdout) as { status: string; waitReason: string; next: string[] };
  assert.equal(waiting.status, 'awaiting-approval');
  assert.match(waiting.waitReason, /wave 2 of 2 waits for approval/);
  assert.ok(waiting.next.includes('slotflow rollout approve e2e-ok'), waiting.next.join(', '));
  const badFlag = await runCli(['rollout', 'watch', 'e2e-ok', '--wait-for', 'later'], env);
  assert.equal(badFlag.code, 2, badFlag.stderr);
  assert.match(badFlag.stderr, /--wait-for: expected 'end'/);
  const approved = await runCli(['rollout', 'approve', 'e2e-ok'], env);
  assert.equal(approved.code, 0, approved.stderr);
  const watched = await runCli(['rollout', 'watch', 'e2e-ok', '--wait-for', 'end', '--json'], env, 300_000);
  assert.equal(watched.code, 0, watched.stderr);
  const okView = JSON.parse(watched.stdout) as { status: string; nodes: Record<string, { state: string }> };
  assert.equal(okView.status, 'succeeded');
  assert.deepEqual(Object.fromEntries(Object.entries(okView.nodes).map(([id, n]) => [id, n.state])), {
    'e2e-1': 'upgraded',
    'e2e-2': 'upgraded',
    'e2e-3': 'upgraded',
  });

  // The failing node is upgraded in the last wave; the threshold trips and the rollout rolls back.
  const rootfs3 = await writeDemoRootfs(join(home, 'rootfs3'), '3.0.0');
  const bad = await runCli(
    [
      'rollout',
      'start',
      '--id',
      'e2e-bad',
      '--rootfs',
      rootfs3,
      '--version',
      '3.0.0',
      '--selector',
      'site=e2e',
      '--waves',
      '1,100%',
      '--on-failure',
      'rollback',
      '--wait',
      '--json',
    ],
    env,
    300_000,
  );
  assert.equal(bad.code, 1, `a rolled-back rollout exits 1: ${bad.stderr}`);
  const badView = JSON.parse(bad.stdout) as { status: string; nodes: Record<string, { state: string }> };
  assert.equal(badView.status, 'rolled-back');
  assert.equal(badView.nodes['e2e-4']?.state, 'fell-back');

  const fleet = JSON.parse((await runCli(['fleet', '--json'], env)).stdout) as {
    nodes: { nodeId: string; version: string }[];
  };
  assert.deepEqual(
    fleet.nodes.map((n) => n.version),
    ['2.0.0', '2.0.0', '2.0.0', '1.0.0'],
    'every touched node is back on the version it had',
  );

  const list = await runCli(['rollout', 'list', '--json'], env);
  assert.deepEqual((JSON.parse(list.stdout) as { rolloutId: string }[]).map((r) => r.rolloutId).sort(), [
    'e2e-bad',
    'e2e-ok',
  ]);
  const shown = await runCli(['rollout', 'status', 'e2e-ok'], env);
  assert.match(shown.stdout, /rollout e2e-ok: succeeded/);
  const refused = await runCli(['rollout', 'approve', 'e2e-ok'], env);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /approve refused: .*has ended|not waiting for approval|no running rollout/);

  // Revoking a node cuts its NATS access too: its credentials no longer connect.
  const revoked = await runCli(['node', 'revoke', 'e2e-4', '--json'], env);
  assert.equal(revoked.code, 0, revoked.stderr);
  assert.ok((JSON.parse(revoked.stdout) as { natsRevoked?: string[] }).natsRevoked?.length);
  const asRevoked = loadConnectionConfig({ ...env, NATS_CREDS: natsCreds.get('e2e-4')! });
  await assert.rejects(
    connectNats(asRevoked.nats, 'revoked-node', { maxReconnectAttempts: 0 }),
    /authorization|revoked|permission/i,
  );
  const stillIn = await connectNats(
    loadConnectionConfig({ ...env, NATS_CREDS: natsCreds.get('e2e-1')! }).nats,
    'enrolled-node',
  );
  await stillIn.close();

  await group.stopAll();
  const down = await runCli(['stack', 'down', '--data-dir', stackDir()], env);
  assert.equal(down.code, 0, down.stderr);
  assert.equal(await isAlive(stack.temporal.pid), false, 'temporal stopped');
  assert.equal(await isAlive(stack.nats.pid), false, 'nats-server stopped');
  if (stack.registry) assert.equal(await isAlive(stack.registry.pid), false, 'the registry stopped');
});
