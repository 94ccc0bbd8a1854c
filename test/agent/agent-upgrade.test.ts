import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeEvent } from '../../schema/index.ts';
import { groupMembers } from './agent-process.ts';
import { startFleet, type Fleet, type TestAgent } from './harness.ts';

let fleet: Fleet;

before(async () => {
  fleet = await startFleet();
});
after(async () => {
  await fleet?.stop();
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const types = (events: readonly NodeEvent[]) => events.map((e) => e.type);
const sha = (bytes: Uint8Array) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function slotState(agent: TestAgent) {
  return {
    boot: await agent.json('slots', 'boot-state.json'),
    a: await agent.json('slots', 'a.json'),
    b: await agent.json('slots', 'b.json'),
  };
}

async function withLog<T>(agent: TestAgent, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    (err as Error).message += `\n--- agent log (${agent.nodeId}) ---\n${await agent.logTail()}`;
    throw err;
  }
}

test('agent upgrade - the full event sequence ends committed on the new slot, and a rollback returns without a download', async () => {
  const agent = await fleet.addAgent({ nodeId: 'up-1', args: ['--initial-version', '1.0.0'] });
  await withLog(agent, async () => {
    await agent.events.waitFor('NodeRegistered', (ev) => ev.find((e) => e.event.type === 'NodeRegistered'));
    const image = await fleet.image('1.1.0', { seed: 11 });
    await fleet.publish(image);
    const commandId = await fleet.upgrade(agent.nodeId, image.manifest, { rolloutId: 'r-up' });
    const outcome = await agent.events.outcome(commandId);
    assert.equal(outcome.type, 'UpgradeCommitted');
    assert.deepEqual(types(agent.events.forCommand(commandId)), [
      'UpgradeCommandAccepted',
      'ArtifactFetched',
      'SlotWritten',
      'TrialBootArmed',
      'NodeRebooting',
      'NodeBooted',
      'HealthCheckPassed',
      'UpgradeCommitted',
    ]);
    const booted = agent.events.forCommand(commandId).find((e) => e.type === 'NodeBooted');
    assert.deepEqual(booted && { slot: booted.slot, version: booted.version, trial: booted.trial }, {
      slot: 'b',
      version: '1.1.0',
      trial: true,
    });
    const slots = await slotState(agent);
    assert.equal(slots.boot?.['active'], 'b');
    assert.equal(slots.boot?.['booted'], 'b');
    assert.equal(slots.boot?.['trial'], false);
    assert.deepEqual(slots.b, { version: '1.1.0', digest: image.manifest.digest });
    assert.equal(sha(await readFile(join(agent.dataDir, 'slots', 'b.img'))), image.manifest.digest);
    assert.deepEqual(await readdir(join(agent.dataDir, 'staging')), [], 'staging is cleaned up');
    const journal = await agent.journal();
    assert.equal(journal.state, 'idle');
    assert.equal(journal.op, null);

    // 1.1.0 committed is the node's minimum version: going back needs the signed allowance.
    const plainId = await fleet.rollback(agent.nodeId, 'r-plain', '1.0.0', { allowDowngrade: false });
    const plain = await agent.events.outcome(plainId);
    assert.equal(plain.type === 'UpgradeCommandRejected' && plain.reason, 'downgrade');

    // Rollback: back to slot a and 1.0.0, with no artifact fetched and slot b untouched.
    const imageB = await stat(join(agent.dataDir, 'slots', 'b.img'));
    const rollbackId = await fleet.rollback(agent.nodeId, 'r-up', '1.0.0');
    const back = await agent.events.outcome(rollbackId);
    assert.equal(back.type, 'NodeRolledBack');
    assert.deepEqual(types(agent.events.forCommand(rollbackId)), [
      'UpgradeCommandAccepted',
      'NodeRebooting',
      'NodeBooted',
      'NodeRolledBack',
    ]);
    assert.equal(back.type === 'NodeRolledBack' && back.slot, 'a');
    assert.equal(back.type === 'NodeRolledBack' && back.version, '1.0.0');
    assert.equal((await slotState(agent)).boot?.['active'], 'a');
    assert.equal((await stat(join(agent.dataDir, 'slots', 'b.img'))).mtimeMs, imageB.mtimeMs);

    // The floor outlived the reboot: 1.0.5 is newer than what runs, older than what was committed.
    const older = await fleet.image('1.0.5', { seed: 12 });
    await fleet.publish(older);
    const olderId = await fleet.upgrade(agent.nodeId, older.manifest, { rolloutId: 'r-older' });
    const refused = await agent.events.outcome(olderId);
    assert.equal(refused.type === 'UpgradeCommandRejected' && refused.reason, 'downgrade');
    assert.match(
      refused.type === 'UpgradeCommandRejected' ? refused.message : '',
      /minimum version 1\.1\.0 \(the newest it committed; it runs 1\.0\.0\)/,
    );
  });
});

test('agent upgrade - a failing health check falls back automatically to the old slot and version', async () => {
  const agent = await fleet.addAgent({
    nodeId: 'hc-1',
    args: ['--initial-version', '2.0.0'],
    config: {
      healthChecks: [{ name: 'app-up', command: ['sh', '-c', 'echo app down >&2; exit 3'], timeout: '5s' }],
    },
  });
  await withLog(agent, async () => {
    const image = await fleet.image('2.1.0', { seed: 21 });
    await fleet.publish(image);
    const commandId = await fleet.upgrade(agent.nodeId, image.manifest, { rolloutId: 'r-hc' });
    const outcome = await agent.events.outcome(commandId);
    assert.equal(outcome.type, 'NodeFellBack');
    assert.deepEqual(types(agent.events.forCommand(commandId)), [
      'UpgradeCommandAccepted',
      'ArtifactFetched',
      'SlotWritten',
      'TrialBootArmed',
      'NodeRebooting',
      'NodeBooted',
      'HealthCheckFailed',
      'NodeRebooting',
      'NodeBooted',
      'NodeFellBack',
    ]);
    const failed = agent.events.forCommand(commandId).find((e) => e.type === 'HealthCheckFailed');
    assert.equal(failed?.type === 'HealthCheckFailed' && failed.check, 'app-up');
    assert.match(failed?.type === 'HealthCheckFailed' ? failed.reason : '', /exited with code 3.*app down/);
    assert.equal(outcome.type === 'NodeFellBack' && outcome.slot, 'a');
    assert.equal(outcome.type === 'NodeFellBack' && outcome.version, '2.0.0');
    const slots = await slotState(agent);
    assert.equal(slots.boot?.['active'], 'a');
    assert.equal(slots.boot?.['booted'], 'a');
    assert.deepEqual(slots.boot?.['bad'], ['b']);
    assert.equal((await agent.journal()).state, 'idle');
  });
});

test('agent upgrade - a corrupted chunk is refused before the slot is touched, with the reason in the event', async () => {
  const agent = await fleet.addAgent({ nodeId: 'bad-1', args: ['--initial-version', '1.0.0'] });
  await withLog(agent, async () => {
    const image = await fleet.image('1.2.0', { seed: 31 });
    const corrupted = Buffer.from(image.bytes);
    const at = 3 * 16 * 1024 + 100;
    corrupted[at] = corrupted[at]! ^ 0xff;
    await fleet.publish(image, corrupted);
    const commandId = await fleet.upgrade(agent.nodeId, image.manifest, { rolloutId: 'r-bad' });
    const outcome = await agent.events.outcome(commandId);
    assert.equal(outcome.type, 'UpgradeCommandRejected');
    assert.equal(outcome.type === 'UpgradeCommandRejected' && outcome.reason, 'artifact-invalid');
    assert.match(
      outcome.type === 'UpgradeCommandRejected' ? outcome.message : '',
      /chunk 3 .*has digest sha256:[0-9a-f]+, expected/,
    );
    assert.deepEqual(types(agent.events.forCommand(commandId)), [
      'UpgradeCommandAccepted',
      'UpgradeCommandRejected',
    ]);
    const slots = await slotState(agent);
    assert.equal(slots.b, undefined, 'slot b holds nothing');
    assert.deepEqual((await readdir(join(agent.dataDir, 'slots'))).sort(), ['a.json', 'boot-state.json']);
    assert.deepEqual(await readdir(join(agent.dataDir, 'staging')), []);
  });
});

test('agent upgrade - an object of the wrong size and a manifest digest mismatch are refused without writing', async () => {
  const agent = await fleet.addAgent({ nodeId: 'bad-2', args: ['--initial-version', '1.0.0'] });
  await withLog(agent, async () => {
    const image = await fleet.image('1.3.0', { seed: 41 });
    await fleet.publish(image, image.bytes.subarray(0, image.bytes.length - 1));
    const sizeId = await fleet.upgrade(agent.nodeId, image.manifest, { rolloutId: 'r-size' });
    const size = await agent.events.outcome(sizeId);
    assert.equal(size.type === 'UpgradeCommandRejected' && size.reason, 'artifact-invalid');
    assert.match(size.type === 'UpgradeCommandRejected' ? size.message : '', /bytes, the manifest says/);

    const other = await fleet.image('1.3.1', { seed: 42 });
    const signed = fleet.sign({
      type: 'Upgrade',
      nodeId: agent.nodeId,
      rolloutId: 'r-digest',
      commandId: 'r-digest:bad-2:upgrade',
      image: { type: 'artifact', manifest: other.manifest },
      manifestDigest: image.manifest.digest,
    });
    await fleet.send(agent.nodeId, signed);
    const digest = await agent.events.outcome('r-digest:bad-2:upgrade');
    assert.equal(digest.type === 'UpgradeCommandRejected' && digest.reason, 'artifact-invalid');
    assert.match(
      digest.type === 'UpgradeCommandRejected' ? digest.message : '',
      /does not match the image digest/,
    );
    assert.equal((await slotState(agent)).b, undefined);
  });
});

test('agent upgrade - the metrics endpoint reports state, bytes written and the last result', async () => {
  const port = await freePort();
  const agent = await fleet.addAgent({
    nodeId: 'metrics-1',
    args: ['--initial-version', '1.0.0', '--metrics-listen', `127.0.0.1:${port}`],
  });
  await withLog(agent, async () => {
    const image = await fleet.image('1.4.0', { seed: 51 });
    await fleet.publish(image);
    const commandId = await fleet.upgrade(agent.nodeId, image.manifest, { rolloutId: 'r-metrics' });
    assert.equal((await agent.events.outcome(commandId)).type, 'UpgradeCommitted');
    // The system restarted at the reboot; bytes written count since then, so check what persists.
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(text, /^slotflow_agent_state\{state="idle"\} 1$/m);
    assert.match(text, /^slotflow_agent_last_result\{result="committed"\} 1$/m);
    assert.match(text, /^slotflow_agent_info\{node_id="metrics-1",version="1.4.0",slot="b"\} 1$/m);
    assert.match(text, /^slotflow_agent_bytes_written_total \d+$/m);
  });
});

test('agent process - killing the supervisor takes the whole simulated machine down', async () => {
  const agent = await fleet.addAgent({ nodeId: 'tether-1' });
  await agent.events.waitFor('NodeRegistered', (ev) => ev.some((e) => e.event.type === 'NodeRegistered'));
  assert.equal((await groupMembers(agent.proc.pid)).length, 2, 'supervisor and system run');
  process.kill(agent.proc.pid, 'SIGKILL');
  const deadline = Date.now() + 5_000;
  while ((await groupMembers(agent.proc.pid)).length > 0) {
    assert.ok(Date.now() < deadline, 'the system process dies with its supervisor');
    await sleep(50);
  }
});
