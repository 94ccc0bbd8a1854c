import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DomainEvent } from '../../schema/index.ts';
import { applyEvent, emptyProjection, projectionToJson } from '../../projection/index.ts';
import { signedStory } from '../../simulator/identity.ts';
import { rolloutStory } from '../fixtures/events.ts';
import { SignedFleet } from '../helpers/signed-events.ts';

const fleet = new SignedFleet();
const trust = { trustedKeys: fleet.trustedKeys };
const story = signedStory(rolloutStory(), fleet.key).map((e) => DomainEvent.parse(e));

test('reducer - a rollout story gives each node its final version, slot and phase', () => {
  const p = emptyProjection();
  story.forEach((e, i) => applyEvent(p, i + 1, e, trust));
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
  story.forEach((e, i) => applyEvent(once, i + 1, e, trust));
  const twice = emptyProjection();
  story.forEach((e, i) => applyEvent(twice, i + 1, e, trust));
  story.forEach((e, i) => {
    const changes = applyEvent(twice, i + 1, e, trust);
    assert.deepEqual(changes, { nodes: [], rollouts: [], trust: [] });
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
    trust,
  );
  assert.deepEqual(changes.nodes, []);
  assert.equal(p.nodes.size, 0);
  assert.equal(p.lastSeq, 1);
});

test("reducer - a node's peer id comes from its enrolment, never from what its registration announces", () => {
  const p = emptyProjection();
  const nodes = new SignedFleet();
  const t = { trustedKeys: nodes.trustedKeys };
  applyEvent(p, 1, nodes.enrol('n-p2p'), t);
  const enrolled = nodes.identities.get('n-p2p')!.peerId;
  const registered = (seq: number, peerId?: string) =>
    applyEvent(
      p,
      seq,
      nodes.sign({
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
      t,
    );
  registered(2, '12D3KooWRogue');
  assert.equal(p.nodes.get('n-p2p')?.peerId, enrolled, 'the enrolled key, not the announced peer id');
  applyEvent(
    p,
    3,
    nodes.sign({
      v: 1,
      id: 'hb-3',
      at: '2026-11-22T10:00:03.000Z',
      type: 'NodeHeartbeat',
      nodeId: 'n-p2p',
      version: '1.0.0',
      activeSlot: 'a',
      state: 'idle',
    }),
    t,
  );
  assert.equal(p.nodes.get('n-p2p')?.peerId, enrolled, 'other events keep it');
  registered(4);
  assert.equal(p.nodes.get('n-p2p')?.peerId, undefined, 'an agent without libp2p has no binding');
  registered(5, '12D3KooWAnother');
  assert.equal(p.nodes.get('n-p2p')?.peerId, enrolled);
});

test('reducer - a rollout remembers the OCI image its slot image was converted from', () => {
  const p = emptyProjection();
  story.forEach((e, i) => applyEvent(p, i + 1, e, trust));
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
    trust,
  );
  const r = p.rollouts.get('r-1');
  assert.equal(r?.imageDigest, digest);
  assert.deepEqual(r?.converted, { reference: `127.0.0.1:5322/os@${ociDigest}`, ociDigest, format: 'ext4' });
});

test('reducer - a node carries what its slot driver installs, from its registration', () => {
  const p = emptyProjection();
  const nodes = new SignedFleet();
  const t = { trustedKeys: nodes.trustedKeys };
  applyEvent(p, 1, nodes.enrol('n-kairos'), t);
  applyEvent(
    p,
    2,
    nodes.sign({
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
    t,
  );
  assert.deepEqual(p.nodes.get('n-kairos')?.installs, ['oci']);
});
