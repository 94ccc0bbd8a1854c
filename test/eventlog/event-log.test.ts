import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { NatsConnection } from '@nats-io/nats-core';
import { openEventLog, type EventLog } from '../../eventlog/index.ts';
import {
  applyEvent,
  createProjector,
  emptyProjection,
  loadProjection,
  openProjectionBucket,
  projectionToJson,
} from '../../projection/index.ts';
import { createLogger } from '../../runtime/log.ts';
import {
  COMMANDS_STREAM,
  DomainEvent,
  EVENTS_STREAM,
  eventSubject,
  rolloutEventsFilter,
  SchemaError,
} from '../../schema/index.ts';
import { signedStory } from '../../simulator/identity.ts';
import { SignedFleet } from '../helpers/signed-events.ts';
import { startNats, type NatsHandle } from '../helpers/servers.ts';
import { rolloutStory } from '../fixtures/events.ts';

const signer = new SignedFleet();
let nats: NatsHandle;
let nc: NatsConnection;
let log: EventLog;

before(async () => {
  nats = await startNats();
  nc = await nats.connect();
  log = await openEventLog(nc);
});

after(async () => {
  await nc?.close();
  await nats?.stop();
});

test('event log - streams are created idempotently with file storage and a duplicate window', async () => {
  await openEventLog(nc); // a second open must not fail or change anything
  const events = await log.jsm.streams.info(EVENTS_STREAM);
  assert.equal(events.config.storage, 'file');
  assert.ok(events.config.duplicate_window >= 60_000_000_000);
  assert.deepEqual(events.config.subjects, ['slotflow.evt.>']);
  const commands = await log.jsm.streams.info(COMMANDS_STREAM);
  assert.deepEqual(commands.config.subjects, ['slotflow.cmd.*']);
  assert.ok(commands.config.max_age > 0);
});

test('event log - appends de-duplicate by event id and replay from any sequence', async () => {
  const story = rolloutStory('r-dedup');
  const first = await log.append(story[0]!);
  const again = await log.append(story[0]!);
  assert.equal(again.duplicate, true);
  assert.equal(again.seq, first.seq);
  for (const e of story.slice(1)) await log.append(e);
  const all = [];
  for await (const e of log.replay({ fromSeq: first.seq })) all.push(e);
  assert.equal(all.length, story.length);
  assert.deepEqual(
    all.map((e) => e.event.id),
    story.map((e) => e.id),
  );
  const tail = [];
  for await (const e of log.replay({ fromSeq: first.seq + 5 })) tail.push(e);
  assert.equal(tail.length, story.length - 5);
  const rolloutOnly = [];
  for await (const e of log.replay({ fromSeq: first.seq, filters: [rolloutEventsFilter('r-dedup')] }))
    rolloutOnly.push(e);
  assert.ok(rolloutOnly.every((e) => !('nodeId' in e.event) || e.event.type === 'NodeUpgradeFinished'));
  assert.ok(rolloutOnly.length > 0 && rolloutOnly.length < story.length);
});

test('event log - a batch is stored in order, de-duplicated by event id, results in order', async () => {
  const story = rolloutStory('r-batch');
  const first = await log.append(story[0]!);
  // A re-sent event before and inside the batch is dropped by the stream, not stored again.
  const results = await log.appendBatch([...story, story[2]!]);
  assert.equal(results.length, story.length + 1);
  assert.deepEqual(results[0], { seq: first.seq, duplicate: true });
  assert.deepEqual(results[story.length], { seq: results[2]!.seq, duplicate: true });
  const fresh = results.slice(1, story.length);
  assert.ok(fresh.every((r) => !r.duplicate));
  assert.deepEqual(
    fresh.map((r) => r.seq),
    fresh.map((_, i) => first.seq + 1 + i),
  );
  const stored = [];
  for await (const e of log.replay({ fromSeq: first.seq })) stored.push(e.event.id);
  assert.deepEqual(
    stored,
    story.map((e) => e.id),
  );
  assert.deepEqual(await log.appendBatch([]), []);
});

test('event log - a batch with an invalid event is refused whole, before any of it is stored', async () => {
  const before = await log.lastSeq();
  const story = rolloutStory('r-batch-bad');
  await assert.rejects(
    log.appendBatch([story[0]!, { ...story[1]!, at: 'yesterday' } as never, story[2]!]),
    (err: unknown) => err instanceof SchemaError && /at: .*got "yesterday"/.test(err.message),
  );
  assert.equal(await log.lastSeq(), before);
});

test('event log - an invalid event is refused before it reaches the stream', async () => {
  const before = await log.lastSeq();
  await assert.rejects(
    log.append({
      v: 1,
      id: 'bad-1',
      at: 'yesterday',
      type: 'NodeRebooting',
      nodeId: 'n-1',
      slot: 'c',
    } as never),
    (err: unknown) =>
      err instanceof SchemaError &&
      /at: .*got "yesterday"/.test(err.message) &&
      /slot: .*got "c"/.test(err.message),
  );
  assert.equal(await log.lastSeq(), before);
});

test('event log - a garbage message in the stream is skipped and reported on replay', async () => {
  const from = (await log.lastSeq()) + 1;
  await log.js.publish('slotflow.evt.node.n-x.Garbage', 'not json');
  await log.append(rolloutStory('r-garbage')[0]!);
  const invalid: number[] = [];
  const read = [];
  for await (const e of log.replay({ fromSeq: from, onInvalid: (i) => invalid.push(i.seq) })) read.push(e);
  assert.deepEqual(invalid, [from]);
  assert.equal(read.length, 1);
});

test('projection - replaying from sequence 1 gives exactly the live projection', async () => {
  const kv = await openProjectionBucket(nc);
  const projector = createProjector({
    log,
    kv,
    logger: createLogger('test:projector'),
    trustedKeys: signer.trustedKeys,
  });
  await projector.start();
  try {
    // Live: events arrive while the projector runs, including a re-sent duplicate.
    const story = signedStory(rolloutStory('r-live'), signer.key);
    for (const e of story) await log.append(e);
    await log.append(story[3]!);
    // The same signed event again under a new Nats-Msg-Id: a replay, kept out of both.
    const replayed = story.find((e) => e.type === 'UpgradeCommitted')!;
    await log.js.publish(eventSubject(DomainEvent.parse(replayed)), JSON.stringify(replayed), {
      msgID: `${replayed.id}-again`,
    });
    const last = await log.lastSeq();
    await projector.waitForSeq(last);
    const stored = projectionToJson(await loadProjection(kv));
    assert.deepEqual(stored, projectionToJson(projector.current()));
    assert.equal(stored.rollouts['r-live']?.status, 'paused');

    // Replay from sequence 1 into a fresh projection: identical to the live one.
    const fresh = emptyProjection();
    const refused: string[] = [];
    const trust = {
      trustedKeys: signer.trustedKeys,
      onRefused: (r: { reason: string }) => refused.push(r.reason),
    };
    for await (const { seq, event } of log.replay({ fromSeq: 1 })) applyEvent(fresh, seq, event, trust);
    assert.deepEqual(projectionToJson(fresh), stored);
    assert.ok(refused.includes('replayed'), `the replay was refused (${refused.join(', ')})`);

    // Rebuild replaces the stored projection from sequence 1 and lands on the same state.
    await kv.put('node.stale-node', JSON.stringify({ nodeId: 'stale-node' }));
    const rebuilt = await projector.rebuild();
    assert.deepEqual(projectionToJson(rebuilt), stored);
    assert.deepEqual(projectionToJson(await loadProjection(kv)), stored);
  } finally {
    await projector.stop();
  }
});
