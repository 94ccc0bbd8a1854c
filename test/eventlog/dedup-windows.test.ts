// The streams' de-duplication windows, as the README states them: within the window a message
// re-published under the same Nats-Msg-Id is dropped by the server; past it the copy is stored,
// and a reader tells it by the id in the body (events) or the node by its nonce (commands).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { nanos } from '@nats-io/nats-core';
import { DEFAULT_STREAM_LIMITS, ensureStreams } from '../../eventlog/streams.ts';
import { COMMANDS_STREAM, EVENTS_STREAM, commandSubject } from '../../schema/index.ts';
import { createMemoryNonceStore, trustKeys, verifyCommand } from '../../signing/index.ts';
import { upgradeCommand } from '../p2p/helpers.ts';
import { testControlPlaneKey } from '../helpers/signed-events.ts';
import { startNats, type NatsHandle } from '../helpers/servers.ts';

let nats: NatsHandle;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
const key = testControlPlaneKey();

before(async () => {
  nats = await startNats();
  nc = await nats.connect();
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  await ensureStreams(jsm);
});
after(() => nats?.stop());

const event = (id: string) => ({
  v: 1,
  id,
  at: new Date().toISOString(),
  type: 'RolloutPaused',
  rolloutId: 'r-dedup',
  reason: 'test',
  by: 'test',
});

const upgrade = (nodeId: string) => upgradeCommand(key, nodeId, 'r-dedup');

/** Every body stored under a subject, raw. */
async function stored(stream: string, subject: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  const info = await jsm.streams.info(stream);
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (m?.subject === subject) out.push(m.json<Record<string, unknown>>());
  }
  return out;
}

test('dedup windows - commands are de-duplicated for ten minutes and events for a day', async () => {
  assert.equal(DEFAULT_STREAM_LIMITS.commandsDuplicateWindowMs, 10 * 60_000);
  assert.equal(DEFAULT_STREAM_LIMITS.eventsDuplicateWindowMs, 24 * 3_600_000);
  assert.equal((await jsm.streams.info(COMMANDS_STREAM)).config.duplicate_window, nanos(10 * 60_000));
  assert.equal((await jsm.streams.info(EVENTS_STREAM)).config.duplicate_window, nanos(24 * 3_600_000));
});

test('dedup windows - within the window a re-published event or command is dropped by the server', async () => {
  const subject = 'slotflow.evt.rollout.r-dedup.RolloutPaused';
  const e = event('r-dedup:within');
  const first = await js.publish(subject, JSON.stringify(e), { msgID: e.id });
  const again = await js.publish(subject, JSON.stringify({ ...e, at: new Date().toISOString() }), {
    msgID: e.id,
  });
  assert.equal(first.duplicate, false);
  assert.equal(again.duplicate, true, 'the second copy is acknowledged as a duplicate');
  assert.equal(again.seq, first.seq, 'and answered with the stored copy’s sequence');
  assert.deepEqual(
    (await stored(EVENTS_STREAM, subject)).map((b) => b['id']),
    [e.id],
    'one copy stored',
  );

  const cmd = upgrade('dedup-1');
  const c1 = await js.publish(commandSubject('dedup-1'), JSON.stringify(cmd), {
    msgID: cmd.command.commandId,
  });
  // A retried send signs anew (new nonce, new times) under the same command id.
  const resent = upgrade('dedup-1');
  const c2 = await js.publish(commandSubject('dedup-1'), JSON.stringify(resent), {
    msgID: resent.command.commandId,
  });
  assert.equal(c1.duplicate, false);
  assert.equal(c2.duplicate, true);
  assert.equal((await stored(COMMANDS_STREAM, commandSubject('dedup-1'))).length, 1, 'one command stored');
});

test('dedup windows - past the window a copy is stored again, and readers tell it by id and nonce', async () => {
  // The same streams with one-second windows, to step past them.
  await ensureStreams(jsm, {
    ...DEFAULT_STREAM_LIMITS,
    eventsDuplicateWindowMs: 1000,
    commandsDuplicateWindowMs: 1000,
  });
  try {
    const subject = 'slotflow.evt.rollout.r-dedup.RolloutPaused';
    const e = event('r-dedup:past');
    const first = await js.publish(subject, JSON.stringify(e), { msgID: e.id });
    await sleep(1_600);
    const late = await js.publish(subject, JSON.stringify(e), { msgID: e.id });
    assert.equal(first.duplicate, false);
    assert.equal(late.duplicate, false, 'past the window the server takes the copy as new');
    const ids = (await stored(EVENTS_STREAM, subject)).map((b) => b['id']);
    // Detectable: the event id is in the body, so a reader counting ids sees the same one twice.
    assert.equal(ids.filter((id) => id === e.id).length, 2);

    const cmd = upgrade('dedup-2');
    await js.publish(commandSubject('dedup-2'), JSON.stringify(cmd), { msgID: cmd.command.commandId });
    await sleep(1_600);
    const lateCmd = await js.publish(commandSubject('dedup-2'), JSON.stringify(cmd), {
      msgID: cmd.command.commandId,
    });
    assert.equal(lateCmd.duplicate, false);
    const copies = await stored(COMMANDS_STREAM, commandSubject('dedup-2'));
    assert.equal(copies.length, 2, 'both copies of the command are stored');
    // Detectable: the node records every nonce it accepted, so the second copy is a replay.
    const nonces = createMemoryNonceStore();
    const ctx = { trustedKeys: trustKeys(key.publicKey), nodeId: 'dedup-2', nonces };
    const verdicts = [];
    for (const copy of copies) verdicts.push(await verifyCommand(copy, ctx));
    assert.equal(verdicts[0]?.ok, true);
    assert.equal(verdicts[1]?.ok, false);
    assert.equal(verdicts[1]?.ok === false && verdicts[1].reason, 'replayed');
  } finally {
    await ensureStreams(jsm);
  }
});
