// The trust gate's checkpoint against a real nats-server: a gate restarted from it gives the same
// verdicts as one replaying the log from sequence 1 (a revocation and a replayed event after the
// checkpoint included) without reading the events before it, and a checkpoint it cannot trust
// (signed by an unknown key, another format version) makes it replay from sequence 1.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { openEventLog, type EventLog } from '../../eventlog/index.ts';
import { DomainEvent, eventSubject, type DomainEventInput, type TrustEvent } from '../../schema/index.ts';
import { signNodeEvent, signTrustEvent } from '../../signing/index.ts';
import { newNodeIdentity } from '../../simulator/identity.ts';
import { createLogger } from '../../runtime/log.ts';
import {
  createRejectionRecorder,
  kvTrustCheckpoints,
  openTrustCheckpointBucket,
  startTrustGate,
  type TrustGate,
  type TrustVerdict,
} from '../../trust/index.ts';
import { startNats, type NatsHandle } from '../helpers/servers.ts';
import { SignedFleet, testControlPlaneKey } from '../helpers/signed-events.ts';

const logger = createLogger('test:trust-checkpoint');
logger.level = 'silent';

let nats: NatsHandle;
let nc: NatsConnection;
let log: EventLog;
let kv: KV;

before(async () => {
  nats = await startNats();
  nc = await nats.connect();
  log = await openEventLog(nc);
  kv = await openTrustCheckpointBucket(nc);
});
after(async () => {
  await nc?.close();
  await nats?.stop();
});

const beat = (nodeId: string): DomainEventInput => ({
  v: 1,
  id: randomUUID(),
  at: new Date().toISOString(),
  type: 'NodeHeartbeat',
  nodeId,
  version: '1.0.0',
  activeSlot: 'a',
  state: 'idle',
});

function gate(fleet: SignedFleet, withCheckpoint: boolean): TrustGate {
  return startTrustGate({
    log,
    trustedKeys: fleet.trustedKeys,
    recorder: createRejectionRecorder(undefined, logger),
    logger,
    ...(withCheckpoint
      ? {
          checkpoint: {
            store: kvTrustCheckpoints({
              kv,
              log,
              signingKey: () => Promise.resolve(fleet.key),
              trustedKeys: fleet.trustedKeys,
            }),
          },
        }
      : {}),
  });
}

const verdictsOf = async (g: TrustGate, seqs: readonly number[]) =>
  Promise.all(seqs.map((s) => g.verdict(s).then((v: TrustVerdict) => (v.ok ? 'ok' : v.reason))));

/** Stored as they come; a copy of a stored event gets a message id of its own, as a replay after
 * the stream's de-duplication window would, so the gate (not the stream) must refuse it. */
async function appendAll(events: readonly DomainEvent[]): Promise<number[]> {
  const seqs: number[] = [];
  for (const e of events) {
    const ack = await log.js.publish(eventSubject(e), JSON.stringify(e), { msgID: randomUUID() });
    seqs.push(ack.seq);
  }
  return seqs;
}

test('trust checkpoint - a gate restarted from it decides as a full replay, without reading the early events', async () => {
  const fleet = new SignedFleet();
  const early: DomainEvent[] = [fleet.enrol('cp-1'), fleet.enrol('cp-2')];
  for (let i = 0; i < 20; i++) early.push(fleet.sign(beat(i % 2 ? 'cp-1' : 'cp-2')));
  const accepted = fleet.sign(beat('cp-1'));
  early.push(accepted);
  // A forged event before the checkpoint: its refusal must survive the restart.
  early.push(DomainEvent.parse(signNodeEvent({ ...beat('cp-1'), seq: 500 } as never, newNodeIdentity())));
  const earlySeqs = await appendAll(early);
  const checkpointed = earlySeqs.at(-1)!;

  const first = gate(fleet, true);
  await first.verdict(checkpointed);
  await first.stop(); // writes the checkpoint at what it read
  const head = await kv.get('head');
  assert.equal(head?.json<{ seq: number }>().seq, checkpointed, 'the stopped gate wrote its checkpoint');

  const revoke = signTrustEvent<Extract<TrustEvent, { type: 'NodeRevoked' }>>(
    { v: 1, id: randomUUID(), at: new Date().toISOString(), type: 'NodeRevoked', nodeId: 'cp-2', by: 'test' },
    fleet.key,
  );
  const late = await appendAll([
    fleet.sign(beat('cp-1')),
    DomainEvent.parse(revoke),
    fleet.sign(beat('cp-2')), // revoked: refused
    DomainEvent.parse({ ...accepted }), // accepted before the checkpoint: a replay
    fleet.sign(beat('cp-1')),
  ]);
  const all = [...earlySeqs, ...late];

  const resumed = gate(fleet, true);
  const replayed = gate(fleet, false);
  try {
    const fromCheckpoint = await verdictsOf(resumed, all);
    const fromOne = await verdictsOf(replayed, all);
    assert.deepEqual(fromCheckpoint, fromOne);
    assert.deepEqual(fromOne.slice(-5), ['ok', 'ok', 'revoked', 'replayed', 'ok']);
    assert.equal(fromOne[early.length - 1], 'wrong-key', 'the forged event before the checkpoint');
    assert.deepEqual(resumed.progress(), {
      fromSeq: checkpointed + 1,
      read: late.at(-1)!,
      applied: late.length,
    });
    assert.equal(replayed.progress().fromSeq, 1);
    assert.equal(replayed.progress().applied, all.length);
  } finally {
    await resumed.stop();
    await replayed.stop();
  }
});

test('trust checkpoint - one signed by a key that is not trusted, or of another version, means a full replay', async () => {
  const fleet = new SignedFleet();
  const seqs = await appendAll([fleet.enrol('cp-9'), fleet.sign(beat('cp-9'))]);
  const writer = gate(fleet, true);
  await writer.verdict(seqs.at(-1)!);
  await writer.stop();

  // Someone who can write the bucket but holds no trusted control-plane key.
  const stranger = new SignedFleet(testControlPlaneKey());
  const forger = kvTrustCheckpoints({
    kv,
    log,
    signingKey: () => Promise.resolve(stranger.key),
    trustedKeys: fleet.trustedKeys,
  });
  const loaded = await kvTrustCheckpoints({
    kv,
    log,
    signingKey: () => Promise.resolve(fleet.key),
    trustedKeys: fleet.trustedKeys,
  }).load();
  assert.ok('snapshot' in loaded, 'the worker reads its own checkpoint');
  await forger.save(loaded.snapshot);
  const afterForgery = gate(fleet, true);
  await afterForgery.verdict(seqs.at(-1)!);
  assert.equal(afterForgery.progress().fromSeq, 1, 'a head signed by an untrusted key is ignored');
  await afterForgery.stop(); // rewrites a good checkpoint

  const good = await kv.get('head');
  await kv.put('head', JSON.stringify({ ...good!.json<object>(), v: 99 }));
  const afterUpgrade = gate(fleet, true);
  await afterUpgrade.verdict(seqs.at(-1)!);
  assert.equal(afterUpgrade.progress().fromSeq, 1, 'a head of another format version is ignored');
  await afterUpgrade.stop();
  assert.ok(((await kv.get('head'))?.json<{ seq: number }>().seq ?? 0) >= seqs.at(-1)!);
});
