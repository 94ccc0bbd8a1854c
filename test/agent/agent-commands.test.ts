import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { initKeys, loadSigningKey } from '../../signing/index.ts';
import type { NodeEvent } from '../../schema/index.ts';
import { startFleet, type Fleet, type TestAgent } from './harness.ts';
import { scratchDir } from './scratch.ts';

let fleet: Fleet;
let agent: TestAgent;

before(async () => {
  fleet = await startFleet();
  agent = await fleet.addAgent({
    nodeId: 'cmd-1',
    args: ['--initial-version', '5.0.0', '--max-command-lifetime', '2h'],
  });
  await agent.events.waitFor('NodeRegistered', (ev) => ev.some((e) => e.event.type === 'NodeRegistered'));
});
after(async () => {
  await fleet?.stop();
});

const rejections = () =>
  agent.events.events
    .map((e) => e.event as NodeEvent)
    .filter(
      (e): e is Extract<NodeEvent, { type: 'UpgradeCommandRejected' }> => e.type === 'UpgradeCommandRejected',
    );

async function nextRejection(
  send: () => Promise<void>,
): Promise<Extract<NodeEvent, { type: 'UpgradeCommandRejected' }>> {
  const before = rejections().length;
  await send();
  return agent.events.waitFor('a rejection', () => rejections()[before], 15_000);
}

async function assertNothingWritten(): Promise<void> {
  assert.deepEqual((await readdir(join(agent.dataDir, 'slots'))).sort(), ['a.json', 'boot-state.json']);
  assert.deepEqual(await readdir(join(agent.dataDir, 'staging')).catch(() => []), []);
  const journal = await agent.journal();
  assert.equal(journal.state, 'idle');
  assert.equal(journal.op, null);
  const acted = agent.events.events.filter((e) =>
    ['ArtifactFetched', 'SlotWritten', 'TrialBootArmed', 'NodeRebooting'].includes(e.event.type),
  );
  assert.deepEqual(acted, [], 'no step of an upgrade happened');
}

test('agent commands - malformed messages are refused with a reason and the agent keeps running', async () => {
  for (const text of [
    'not json at all',
    '{}',
    JSON.stringify({ command: { type: 'Upgrade' }, keyId: 'x', signature: 'y' }),
  ]) {
    const refused = await nextRejection(() => fleet.send(agent.nodeId, text, `m-${Math.random()}`));
    assert.equal(refused.reason, 'malformed');
    assert.equal(refused.commandId, undefined, 'nothing unverified is echoed as a command id');
  }
  await assertNothingWritten();
});

test('agent commands - forged commands (unknown key, tampered signature) are refused and nothing is written', async () => {
  const image = await fleet.image('5.1.0', { seed: 3 });
  await fleet.publish(image);
  const stranger = await loadSigningKey(
    await scratchDir('slotflow-stranger-').then(async (home) => {
      await initKeys(home);
      return home;
    }),
  );
  const upgrade = {
    type: 'Upgrade' as const,
    nodeId: agent.nodeId,
    image: { type: 'artifact' as const, manifest: image.manifest },
    manifestDigest: image.manifest.digest,
  };
  const unknown = await nextRejection(() => fleet.send(agent.nodeId, fleet.sign(upgrade, stranger)));
  assert.equal(unknown.reason, 'unknown-key');

  const signed = fleet.sign(upgrade);
  const tampered = { ...signed, command: { ...signed.command, allowDowngrade: true } };
  const bad = await nextRejection(() => fleet.send(agent.nodeId, tampered));
  assert.equal(bad.reason, 'bad-signature');
  assert.equal(bad.commandId, undefined);
  await assertNothingWritten();
});

test('agent commands - expired, not yet valid, too long valid and wrong-node commands are refused and nothing is written', async () => {
  const image = await fleet.image('5.2.0', { seed: 4 });
  await fleet.publish(image);
  const base = {
    type: 'Upgrade' as const,
    nodeId: agent.nodeId,
    image: { type: 'artifact' as const, manifest: image.manifest },
    manifestDigest: image.manifest.digest,
  };
  const hour = 3_600_000;
  const expired = await nextRejection(() =>
    fleet.send(
      agent.nodeId,
      fleet.sign({
        ...base,
        commandId: 'r-old:cmd-1:upgrade',
        issuedAt: new Date(Date.now() - 2 * hour).toISOString(),
        expiresAt: new Date(Date.now() - hour).toISOString(),
      }),
    ),
  );
  assert.equal(expired.reason, 'expired');
  assert.equal(expired.commandId, 'r-old:cmd-1:upgrade');

  const future = await nextRejection(() =>
    fleet.send(
      agent.nodeId,
      fleet.sign({
        ...base,
        issuedAt: new Date(Date.now() + hour).toISOString(),
        expiresAt: new Date(Date.now() + 2 * hour).toISOString(),
      }),
    ),
  );
  assert.equal(future.reason, 'not-yet-valid');

  // This agent accepts commands valid for at most 2 h (--max-command-lifetime).
  const tooLong = await nextRejection(() =>
    fleet.send(
      agent.nodeId,
      fleet.sign({ ...base, expiresAt: new Date(Date.now() + 3 * hour).toISOString() }),
    ),
  );
  assert.equal(tooLong.reason, 'expiry-too-far');
  assert.match(tooLong.message, /further out than this node accepts \(7200 s from now\)/);

  const wrongNode = await nextRejection(() =>
    fleet.send(agent.nodeId, fleet.sign({ ...base, nodeId: 'someone-else' })),
  );
  assert.equal(wrongNode.reason, 'wrong-node');
  await assertNothingWritten();
});

test('agent commands - a downgrade is refused unless the command allows it', async () => {
  const image = await fleet.image('4.9.0', { seed: 5 });
  await fleet.publish(image);
  const refused = await nextRejection(async () => {
    await fleet.upgrade(agent.nodeId, image.manifest, { rolloutId: 'r-down' });
  });
  assert.equal(refused.reason, 'downgrade');
  assert.match(refused.message, /4\.9\.0 is older than the running 5\.0\.0/);
  await assertNothingWritten();
});

test('agent commands - a replayed nonce is refused, also after a power cycle, and a redelivered command only repeats its result', async () => {
  // Rollback to the running version: accepted and finished at once, without side effects.
  const first = fleet.sign({
    type: 'Rollback',
    nodeId: agent.nodeId,
    rolloutId: 'r-rp',
    commandId: 'r-rp:cmd-1:rollback',
    toVersion: '5.0.0',
  });
  await fleet.send(agent.nodeId, first);
  const done = await agent.events.outcome(first.command.commandId);
  assert.equal(done.type, 'NodeRolledBack');

  const image = await fleet.image('5.3.0', { seed: 6 });
  await fleet.publish(image);
  const reuse = () =>
    fleet.sign({
      type: 'Upgrade',
      nodeId: agent.nodeId,
      rolloutId: 'r-rp2',
      commandId: `r-rp2-${Date.now()}:cmd-1:upgrade`,
      nonce: first.command.nonce,
      image: { type: 'artifact', manifest: image.manifest },
      manifestDigest: image.manifest.digest,
    });
  const replayed = await nextRejection(() => fleet.send(agent.nodeId, reuse()));
  assert.equal(replayed.reason, 'replayed');

  await agent.powerCycle();
  await agent.events.waitFor(
    'a second NodeRegistered',
    (ev) => ev.filter((e) => e.event.type === 'NodeRegistered').length >= 2,
  );
  const afterRestart = await nextRejection(() => fleet.send(agent.nodeId, reuse()));
  assert.equal(afterRestart.reason, 'replayed');

  // The very same command again (as a redelivery would bring it): no new fact is stored.
  const stored = agent.events.forCommand(first.command.commandId).length;
  await fleet.send(agent.nodeId, first, 'redelivery-1');
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(agent.events.forCommand(first.command.commandId).length, stored);
  await assertNothingWritten();
});

test('agent commands - a second upgrade while one runs is refused as busy', async () => {
  const a = await fleet.image('6.0.0', { seed: 7, size: 512 * 1024 });
  const b = await fleet.image('6.1.0', { seed: 8 });
  await fleet.publish(a);
  await fleet.publish(b);
  const firstId = await fleet.upgrade(agent.nodeId, a.manifest, { rolloutId: 'r-busy1' });
  const secondId = await fleet.upgrade(agent.nodeId, b.manifest, { rolloutId: 'r-busy2' });
  const second = await agent.events.outcome(secondId);
  assert.equal(second.type === 'UpgradeCommandRejected' && second.reason, 'busy');
  const first = await agent.events.outcome(firstId);
  assert.equal(first.type, 'UpgradeCommitted');
});
