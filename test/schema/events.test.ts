import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DomainEvent,
  EVENT_TYPES,
  eventSubject,
  isNodeEvent,
  canonicalJson,
  SchemaError,
  parseWith,
} from '../../schema/index.ts';

const at = '2026-11-22T10:00:00.000Z';

test('events - every type named in the design exists', () => {
  for (const type of [
    'RolloutStarted',
    'ImageBuilt',
    'ImagePublished',
    'WaveStarted',
    'WaveGatePassed',
    'WaveGateFailed',
    'RolloutPaused',
    'RolloutResumed',
    'RolloutRolledBack',
    'RolloutCompleted',
    'NodeRegistered',
    'NodeHeartbeat',
    'UpgradeCommandAccepted',
    'UpgradeCommandRejected',
    'ArtifactFetched',
    'SlotWritten',
    'TrialBootArmed',
    'NodeRebooting',
    'NodeBooted',
    'HealthCheckPassed',
    'HealthCheckFailed',
    'UpgradeCommitted',
    'NodeFellBack',
    'NodeRolledBack',
  ]) {
    assert.ok(EVENT_TYPES.includes(type as never), `${type} missing`);
  }
});

test('events - subjects follow slotflow.evt.<rollout|node>.<id>.<Type>', () => {
  const node = DomainEvent.parse({
    v: 1,
    id: 'e1',
    at,
    type: 'SlotWritten',
    nodeId: 'n-1',
    rolloutId: 'r-1',
    slot: 'b',
    digest: `sha256:${'a'.repeat(64)}`,
  });
  assert.equal(isNodeEvent(node), true);
  assert.equal(eventSubject(node), 'slotflow.evt.node.n-1.SlotWritten');
  const rollout = DomainEvent.parse({
    v: 1,
    id: 'e2',
    at,
    type: 'NodeUpgradeFinished',
    rolloutId: 'r-1',
    nodeId: 'n-1',
    wave: 0,
    outcome: 'upgraded',
  });
  assert.equal(isNodeEvent(rollout), false);
  assert.equal(eventSubject(rollout), 'slotflow.evt.rollout.r-1.NodeUpgradeFinished');
});

test('events - a missing envelope field or an unknown version is named', () => {
  try {
    parseWith(DomainEvent, { v: 2, id: 'e1', type: 'NodeRebooting', nodeId: 'n-1', slot: 'b' }, 'event');
    assert.fail('expected rejection');
  } catch (err) {
    assert.ok(err instanceof SchemaError);
    const text = err.problems.join('\n');
    assert.match(text, /^v: .*got 2$/m);
    assert.match(text, /^at: .*got nothing$/m);
  }
});

test('canonical json - key order does not matter, undefined members are dropped', () => {
  assert.equal(canonicalJson({ b: 1, a: [true, null, 'x'], c: undefined }), '{"a":[true,null,"x"],"b":1}');
  assert.equal(canonicalJson({ a: { z: 1, y: 2 } }), canonicalJson({ a: { y: 2, z: 1 } }));
  assert.throws(() => canonicalJson({ a: Number.NaN }), /\$\.a: expected a finite number/);
});

test('versions - numeric parts compare numerically and pre-releases sort first', async () => {
  const { compareVersions } = await import('../../schema/index.ts');
  assert.ok(compareVersions('1.10.0', '1.9.9') > 0);
  assert.ok(compareVersions('v2.0.0', '2.0.0') === 0);
  assert.ok(compareVersions('2.0.0-rc.1', '2.0.0') < 0);
  assert.ok(compareVersions('2.0.0-rc.2', '2.0.0-rc.10') < 0);
  assert.ok(compareVersions('24.04', '24.04.1') < 0);
  assert.ok(compareVersions('1.0.0', '1.0') === 0);
});
