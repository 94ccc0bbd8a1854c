import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DomainEvent } from '../../schema/index.ts';
import { applyEvent, emptyProjection, projectionToJson } from '../../projection/index.ts';
import { rolloutStory } from '../fixtures/events.ts';

const story = rolloutStory().map((e) => DomainEvent.parse(e));

test('reducer - a rollout story gives each node its final version, slot and phase', () => {
  const p = emptyProjection();
  story.forEach((e, i) => applyEvent(p, i + 1, e));
  const n1 = p.nodes.get('n-1');
  const n3 = p.nodes.get('n-3');
  assert.equal(n1?.version, '1.1.0');
  assert.equal(n1?.activeSlot, 'b');
  assert.equal(n1?.previousVersion, '1.0.0');
  assert.equal(n1?.rollout?.phase, 'committed');
  assert.equal(n3?.version, '1.0.0');
  assert.equal(n3?.activeSlot, 'a');
  assert.equal(n3?.rollout?.phase, 'fell-back');
  const r = p.rollouts.get('r-1');
  assert.equal(r?.status, 'paused');
  assert.equal(r?.upgraded, 2);
  assert.equal(r?.failed, 1);
  assert.deepEqual(
    r?.waves.map((w) => w.status),
    ['passed', 'failed'],
  );
  assert.equal(r?.nodes['n-3']?.outcome, 'fell-back');
  assert.equal(r?.policy.waves, '1,100%');
  assert.equal(p.lastSeq, story.length);
});

test('reducer - re-delivered sequences change nothing', () => {
  const once = emptyProjection();
  story.forEach((e, i) => applyEvent(once, i + 1, e));
  const twice = emptyProjection();
  story.forEach((e, i) => applyEvent(twice, i + 1, e));
  story.forEach((e, i) => {
    const changes = applyEvent(twice, i + 1, e);
    assert.deepEqual(changes, { nodes: [], rollouts: [] });
  });
  assert.deepEqual(projectionToJson(twice), projectionToJson(once));
});

test('reducer - events of an unregistered node are not projected', () => {
  const p = emptyProjection();
  const changes = applyEvent(
    p,
    1,
    DomainEvent.parse({
      v: 1,
      id: 'x',
      at: '2026-11-22T10:00:00.000Z',
      type: 'NodeRebooting',
      nodeId: 'ghost',
      slot: 'b',
    }),
  );
  assert.deepEqual(changes.nodes, []);
  assert.equal(p.nodes.size, 0);
  assert.equal(p.lastSeq, 1);
});

test('reducer - a node carries the peer id of its latest registration', () => {
  const p = emptyProjection();
  const registered = (seq: number, peerId?: string) =>
    applyEvent(
      p,
      seq,
      DomainEvent.parse({
        v: 1,
        id: `reg-${seq}`,
        at: `2026-11-22T10:00:0${seq}.000Z`,
        type: 'NodeRegistered',
        nodeId: 'n-p2p',
        labels: { site: 'lab' },
        version: '1.0.0',
        activeSlot: 'a',
        agentVersion: '0.1.0',
        ...(peerId ? { peerId } : {}),
      }),
    );
  registered(1, '12D3KooWFirst');
  assert.equal(p.nodes.get('n-p2p')?.peerId, '12D3KooWFirst');
  applyEvent(
    p,
    2,
    DomainEvent.parse({
      v: 1,
      id: 'hb-2',
      at: '2026-11-22T10:00:02.000Z',
      type: 'NodeHeartbeat',
      nodeId: 'n-p2p',
      version: '1.0.0',
      activeSlot: 'a',
      state: 'idle',
    }),
  );
  assert.equal(p.nodes.get('n-p2p')?.peerId, '12D3KooWFirst', 'other events keep it');
  registered(3, '12D3KooWSecond');
  assert.equal(p.nodes.get('n-p2p')?.peerId, '12D3KooWSecond');
  registered(4);
  assert.equal(p.nodes.get('n-p2p')?.peerId, undefined, 'an agent without libp2p has no binding');
});

test('reducer - a rollout remembers the OCI image its slot image was converted from', () => {
  const p = emptyProjection();
  story.forEach((e, i) => applyEvent(p, i + 1, e));
  const ociDigest = `sha256:${'1'.repeat(64)}`;
  const digest = `sha256:${'2'.repeat(64)}`;
  applyEvent(
    p,
    story.length + 1,
    DomainEvent.parse({
      v: 1,
      id: 'conv-1',
      at: '2026-11-22T10:10:00.000Z',
      type: 'ImageConverted',
      rolloutId: 'r-1',
      reference: `127.0.0.1:5322/os@${ociDigest}`,
      ociDigest,
      digest,
      format: 'ext4',
    }),
  );
  const r = p.rollouts.get('r-1');
  assert.equal(r?.imageDigest, digest);
  assert.deepEqual(r?.converted, { reference: `127.0.0.1:5322/os@${ociDigest}`, ociDigest, format: 'ext4' });
});

test('reducer - a node carries what its slot driver installs, from its registration', () => {
  const p = emptyProjection();
  applyEvent(
    p,
    1,
    DomainEvent.parse({
      v: 1,
      id: 'reg-installs',
      at: '2026-11-22T10:00:00.000Z',
      type: 'NodeRegistered',
      nodeId: 'n-kairos',
      labels: {},
      version: '1.0.0',
      activeSlot: 'a',
      agentVersion: '0.1.0',
      installs: ['oci'],
    }),
  );
  assert.deepEqual(p.nodes.get('n-kairos')?.installs, ['oci']);
});
