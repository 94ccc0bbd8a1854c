// Fuzz: the agent's command inbox (node-agent/command-inbox.ts), the code that takes a raw
// command off NATS or gossip and turns it into journal entries, wired as the agent wires it: a
// real journal, trust store, version floor and `file` slot driver in a scratch directory (the
// executor, which would act on an accepted operation, only records that it was woken).
// Properties: handle() never throws; a command whose signature does not hold is answered with
// one UpgradeCommandRejected and changes nothing else in the journal (no nonce used, nothing
// marked handled, no operation); and after all that a good command is still accepted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import { createCommandInbox } from '../../node-agent/command-inbox.ts';
import { openJournal } from '../../node-agent/journal.ts';
import { createFileSlotDriver } from '../../node-agent/slot-drivers/file.ts';
import { openTrustStore } from '../../node-agent/trusted-keys.ts';
import { openVersionFloor } from '../../node-agent/version-floor.ts';
import type { NodeEvent } from '../../schema/index.ts';
import { newNonce, signCommand, trustKeys } from '../../signing/index.ts';
import { cleanupDirs, controlPlaneKey, tempDir, testLog } from '../p2p/helpers.ts';
import { fuzz, mangledBytes, mutationsOf, randomJson } from './harness.ts';

test.after(cleanupDirs);

test('fuzz - agent command inbox: every raw command is answered, refused ones change nothing else', async () => {
  const key = await controlPlaneKey();
  const dir = await tempDir();
  const journal = await openJournal(join(dir, 'journal.json'));
  const driver = createFileSlotDriver({ slotsDir: join(dir, 'slots') });
  await driver.init('1.0.0');
  let woken = 0;
  const inbox = createCommandInbox({
    nodeId: 'n-1',
    journal,
    driver,
    executor: {
      start() {},
      stop: async () => {},
      wake: () => void woken++,
      cancel() {},
    },
    trust: await openTrustStore({
      file: join(dir, 'trusted-keys.json'),
      bootstrap: trustKeys(key.publicKey),
    }),
    floor: await openVersionFloor(join(dir, 'min-version.json')),
    maxCommandLifetimeMs: 24 * 3_600_000,
    healthChecks: [],
    initialVersion: '1.0.0',
    log: testLog(),
    count: () => undefined,
  });
  const now = Date.now();
  const command = (type: 'Upgrade' | 'Cancel', id: string) =>
    signCommand(
      {
        v: 1,
        type,
        commandId: id,
        nonce: newNonce(),
        issuedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + 3_600_000).toISOString(),
        nodeId: 'n-1',
        rolloutId: 'r-1',
        ...(type === 'Upgrade'
          ? {
              // An OCI image for the file driver: verified, then refused as unsupported, so the
              // node never starts an operation however often it comes.
              image: {
                type: 'oci',
                reference: 'r/os:2',
                digest: `sha256:${'a'.repeat(64)}`,
                version: '2.0.0',
              },
              manifestDigest: `sha256:${'a'.repeat(64)}`,
            }
          : {}),
      } as never,
      key,
    );
  const valid = command('Upgrade', 'r-1:n-1:upgrade');
  const arb = fc.oneof(
    { weight: 6, arbitrary: mutationsOf(valid).map((m) => JSON.stringify(m.value) ?? '') },
    { weight: 1, arbitrary: randomJson.map((v) => JSON.stringify(v)) },
    { weight: 2, arbitrary: mangledBytes(valid).map((b) => new TextDecoder().decode(b)) },
  );
  let cases = 0;
  await fuzz('agent-inbox', arb, async (data) => {
    // Keep the journal small: the outbox is published and emptied in a running agent.
    if (++cases % 100 === 0) await journal.commit((d) => void (d.outbox = []));
    const before = structuredClone(journal.data);
    await inbox.handle(data);
    const after = journal.data;
    const added = after.outbox.slice(before.outbox.length) as NodeEvent[];
    assert.equal(after.op, null, 'a fuzzed command started an operation');
    assert.equal(after.state, 'idle');
    assert.ok(added.length <= 2, `one raw command produced ${added.length} events`);
    const refusal = added.find((e) => e.type === 'UpgradeCommandRejected');
    if (refusal && refusal.type === 'UpgradeCommandRejected') {
      assert.ok(refusal.message.length > 0, 'a refusal event says why');
      if (['malformed', 'unknown-key', 'bad-signature'].includes(refusal.reason)) {
        assert.deepEqual(after.nonces, before.nonces, 'an unverified command used a nonce');
        assert.deepEqual(after.handled, before.handled, 'an unverified command was marked handled');
        assert.equal(refusal.commandId, undefined, 'an unverified command id reached the event');
      }
    } else {
      // No refusal: the signed command itself, already answered (its result sent again).
      assert.ok(added.length <= 1);
    }
  });
  assert.equal(woken, 0);
  // Still serving: a new, good command is accepted.
  const cancel = command('Cancel', 'r-1:n-1:cancel');
  await inbox.handle(JSON.stringify(cancel));
  const last = journal.data.outbox.at(-1);
  assert.equal(last?.type, 'UpgradeCommandAccepted');
  assert.ok(journal.data.handled.some((h) => h.commandId === 'r-1:n-1:cancel'));
});
