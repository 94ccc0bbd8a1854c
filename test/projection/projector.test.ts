// The projector against a real nats-server: a backlog is applied in memory and each view it
// changed is written once per batch; a failed write is retried with everything it held.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { openEventLog, type EventLog } from '../../eventlog/index.ts';
import {
  createProjector,
  loadProjection,
  openProjectionBucket,
  projectionToJson,
} from '../../projection/index.ts';
import { createLogger } from '../../runtime/log.ts';
import { signedStory } from '../../simulator/identity.ts';
import { rolloutStory } from '../fixtures/events.ts';
import { randomUUID } from 'node:crypto';
import { DomainEvent, type TrustEvent } from '../../schema/index.ts';
import { signTrustEvent } from '../../signing/index.ts';
import { SignedFleet, testControlPlaneKey } from '../helpers/signed-events.ts';
import { startNats, type NatsHandle } from '../helpers/servers.ts';

let nats: NatsHandle;
let nc: NatsConnection;
let log: EventLog;
const logger = createLogger('test:projector');
logger.level = 'silent';
const signer = new SignedFleet();
const trustedKeys = signer.trustedKeys;

before(async () => {
  nats = await startNats();
  nc = await nats.connect();
  log = await openEventLog(nc);
});

after(async () => {
  await nc?.close();
  await nats?.stop();
});

/** The bucket with its puts recorded by key; the first put of `refuse.key` fails. */
function recordingKv(kv: KV, puts: string[], refuse?: { key: string; refused: boolean }): KV {
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === 'put') {
        return (key: string, value: string | Uint8Array) => {
          if (refuse && key === refuse.key && !refuse.refused) {
            refuse.refused = true;
            return Promise.reject(new Error(`put of ${key} refused once`));
          }
          puts.push(key);
          return target.put(key, value);
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

test('projector - a backlog is written once per changed view, then its sequence', async () => {
  const story = signedStory(rolloutStory('r-backlog'), signer.key);
  await log.appendBatch(story);
  const last = await log.lastSeq();
  const puts: string[] = [];
  const kv = recordingKv(await openProjectionBucket(nc, 'projection_backlog'), puts);
  const projector = createProjector({ log, kv, logger, trustedKeys });
  await projector.start();
  try {
    await projector.waitForSeq(last);
    // One batch: three nodes (view and trust entry) and one rollout, each written once, meta last.
    assert.deepEqual(
      puts.slice(0, -1).sort(),
      ['node.n-1', 'node.n-2', 'node.n-3', 'rollout.r-backlog', 'trust.n-1', 'trust.n-2', 'trust.n-3'].sort(),
    );
    assert.equal(puts.at(-1), 'meta');
    assert.ok(story.length > puts.length, `${story.length} events, ${puts.length} puts`);
    assert.deepEqual(projectionToJson(await loadProjection(kv)), projectionToJson(projector.current()));
    assert.equal((await loadProjection(kv)).lastSeq, last);
  } finally {
    await projector.stop();
  }
});

test('projector - a failed write is retried with every view its batch changed', async () => {
  const refuse = { key: 'rollout.r-retry', refused: false };
  const kv = recordingKv(await openProjectionBucket(nc, 'projection_retry'), [], refuse);
  const projector = createProjector({ log, kv, logger, trustedKeys });
  await projector.start();
  try {
    await log.appendBatch(signedStory(rolloutStory('r-retry'), signer.key));
    const last = await log.lastSeq();
    await projector.waitForSeq(last, 20_000);
    assert.ok(refuse.refused, 'the rollout view was refused once');
    const stored = await loadProjection(kv);
    assert.equal(stored.lastSeq, last);
    assert.deepEqual(projectionToJson(stored), projectionToJson(projector.current()));
    assert.equal(stored.rollouts.get('r-retry')?.status, 'paused');
  } finally {
    await projector.stop();
  }
});

test('projector - a retired control-plane key stays retired when the projector restarts from its stored views', async () => {
  const successor = new SignedFleet(testControlPlaneKey());
  const everyKey = new Map([...trustedKeys, ...successor.trustedKeys]);
  const kv = await openProjectionBucket(nc, 'projection_retired');
  const retire = DomainEvent.parse(
    signTrustEvent<Extract<TrustEvent, { type: 'ControlPlaneKeyRetired' }>>(
      {
        v: 1,
        id: randomUUID(),
        at: new Date().toISOString(),
        type: 'ControlPlaneKeyRetired',
        nodeId: 'control-plane',
        by: 'test',
        keyId: signer.key.keyId,
      },
      successor.key,
    ),
  );
  await log.appendBatch([signer.enrol('rk-1'), retire]);
  let projector = createProjector({ log, kv, logger, trustedKeys: everyKey });
  await projector.start();
  await projector.waitForSeq(await log.lastSeq());
  await projector.stop();
  assert.deepEqual([...(await loadProjection(kv)).trust.retiredKeys.keys()], [signer.key.keyId]);

  // Signed by the retired key after its retirement: a projector that forgot it would enrol rk-2.
  await log.appendBatch([signer.enrol('rk-2'), successor.enrol('rk-3')]);
  projector = createProjector({ log, kv, logger, trustedKeys: everyKey });
  await projector.start();
  try {
    await projector.waitForSeq(await log.lastSeq());
    const trust = projector.current().trust.nodes;
    assert.equal(trust.get('rk-1')?.status, 'enrolled');
    assert.equal(trust.has('rk-2'), false);
    assert.equal(trust.get('rk-3')?.status, 'enrolled');
  } finally {
    await projector.stop();
  }
});
