import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { DomainEvent, type DomainEventInput, type TrustEvent } from '../../schema/index.ts';
import { signNodeEvent, signTrustEvent } from '../../signing/index.ts';
import { newNodeIdentity } from '../../simulator/identity.ts';
import { applyTrust, emptyTrustState, type TrustVerdict } from '../../trust/index.ts';
import { SignedFleet, testControlPlaneKey } from '../helpers/signed-events.ts';

const at = '2026-11-22T10:00:00.000Z';
const beat = (nodeId: string, id = randomUUID()): DomainEventInput => ({
  v: 1,
  id,
  at,
  type: 'NodeHeartbeat',
  nodeId,
  version: '1.0.0',
  activeSlot: 'a',
  state: 'idle',
});

/** Runs events through one trust state in order; returns each verdict's reason ('ok' when passed). */
function run(fleet: SignedFleet, events: DomainEvent[]): string[] {
  const state = emptyTrustState();
  return events.map((e, i) => {
    const v: TrustVerdict = applyTrust(state, i + 1, e, fleet.trustedKeys);
    return v.ok ? 'ok' : v.reason;
  });
}

test('trust reducer - an enrolled node signed event passes; unsigned, forged and replayed ones do not', () => {
  const fleet = new SignedFleet();
  const enrolled = fleet.enrol('n-1');
  const good = fleet.sign(beat('n-1'));
  const unsigned = DomainEvent.parse({ ...beat('n-1'), seq: 99 });
  // Valid shape and a real signature, by a key the node was not enrolled with.
  const forged = DomainEvent.parse(signNodeEvent({ ...beat('n-1'), seq: 100 } as never, newNodeIdentity()));
  const tampered = DomainEvent.parse({ ...fleet.sign(beat('n-1')), state: 'armed' });
  const replay = DomainEvent.parse({ ...good });
  assert.deepEqual(run(fleet, [enrolled, good, unsigned, forged, tampered, replay]), [
    'ok',
    'ok',
    'unsigned',
    'wrong-key',
    'bad-signature',
    'replayed',
  ]);
});

test('trust reducer - events of unknown, pending and rejected nodes are refused; a signed request makes a node pending', () => {
  const fleet = new SignedFleet();
  const identity = newNodeIdentity();
  const own = (e: DomainEventInput, seq: number) =>
    DomainEvent.parse(signNodeEvent({ ...e, seq } as never, identity));
  const request = own(
    {
      v: 1,
      id: randomUUID(),
      at,
      type: 'NodeEnrollmentRequested',
      nodeId: 'n-2',
      publicKey: identity.publicKey,
      labels: {},
    },
    1,
  );
  const decision = (type: 'NodeEnrollmentRejected' | 'NodeRevoked', key = fleet.key) =>
    DomainEvent.parse(
      signTrustEvent<Extract<TrustEvent, { type: typeof type }>>(
        { v: 1, id: randomUUID(), at, type, nodeId: 'n-2', by: 'test' },
        key,
      ),
    );
  assert.deepEqual(
    run(fleet, [
      own(beat('n-2'), 2),
      request,
      own(beat('n-2'), 3),
      decision('NodeEnrollmentRejected'),
      own(beat('n-2'), 4),
    ]),
    ['unknown-node', 'ok', 'pending', 'ok', 'rejected'],
  );
});

test('trust reducer - a request not signed by the key it presents is refused', () => {
  const fleet = new SignedFleet();
  const presented = newNodeIdentity();
  const request = DomainEvent.parse(
    signNodeEvent(
      {
        v: 1,
        id: randomUUID(),
        at,
        type: 'NodeEnrollmentRequested',
        nodeId: 'n-3',
        publicKey: presented.publicKey,
        labels: {},
        seq: 1,
      } as never,
      newNodeIdentity(),
    ),
  );
  assert.deepEqual(run(fleet, [request]), ['wrong-key']);
});

test('trust reducer - a revocation refuses the node events after it, not the ones before', () => {
  const fleet = new SignedFleet();
  const enrolled = fleet.enrol('n-4');
  const events = [enrolled, fleet.sign(beat('n-4'))];
  const state = emptyTrustState();
  const revoke = DomainEvent.parse(
    signTrustEvent<Extract<TrustEvent, { type: 'NodeRevoked' }>>(
      { v: 1, id: randomUUID(), at, type: 'NodeRevoked', nodeId: 'n-4', by: 'test' },
      fleet.key,
    ),
  );
  const after = fleet.sign(beat('n-4'));
  const verdicts = [...events, revoke, after].map((e, i) => applyTrust(state, i + 1, e, fleet.trustedKeys));
  assert.deepEqual(
    verdicts.map((v) => (v.ok ? 'ok' : v.reason)),
    ['ok', 'ok', 'ok', 'revoked'],
  );
  assert.equal(state.nodes.get('n-4')?.status, 'revoked');
});

test('trust reducer - trust events must carry a trusted control-plane signature', () => {
  const fleet = new SignedFleet();
  const rogue = new SignedFleet(testControlPlaneKey());
  assert.deepEqual(run(fleet, [rogue.enrol('n-5'), fleet.enrol('n-6')]), ['bad-issuer', 'ok']);
});

test('trust reducer - a retired control-plane key: what it signed before stays valid, what it signs after is refused', () => {
  const old = new SignedFleet();
  const fresh = new SignedFleet(testControlPlaneKey());
  // The control plane reading its log knows both keys, the retired one included.
  const both = new Map([...old.trustedKeys, ...fresh.trustedKeys]);
  const retire = (keyId: string, by = fresh.key) =>
    DomainEvent.parse(
      signTrustEvent<Extract<TrustEvent, { type: 'ControlPlaneKeyRetired' }>>(
        {
          v: 1,
          id: randomUUID(),
          at,
          type: 'ControlPlaneKeyRetired',
          nodeId: 'control-plane',
          by: 'test',
          keyId,
        },
        by,
      ),
    );
  const events = [
    old.enrol('n-7'), // before the retirement: valid for good
    old.sign(beat('n-7')),
    retire(old.key.keyId),
    old.sign(beat('n-7')), // the node's own key is still enrolled
    old.enrol('n-8'), // signed by the retired key after its retirement
    fresh.enrol('n-9'),
    retire(fresh.key.keyId, fresh.key), // a key cannot retire itself
    retire(old.key.keyId), // again: nothing changes
  ];
  const state = emptyTrustState();
  const verdicts = events.map((e, i) => applyTrust(state, i + 1, e, both));
  assert.deepEqual(
    verdicts.map((v) => (v.ok ? 'ok' : v.reason)),
    ['ok', 'ok', 'ok', 'ok', 'bad-issuer', 'ok', 'malformed', 'ok'],
  );
  assert.match((verdicts[4] as { message: string }).message, /retired at sequence 3/);
  assert.equal(state.nodes.get('n-7')?.status, 'enrolled');
  assert.equal(state.nodes.has('n-8'), false);
  assert.deepEqual([...state.retiredKeys], [[old.key.keyId, 3]]);
});

test('trust reducer - no node may use the id the control plane files its own records under', () => {
  const fleet = new SignedFleet();
  assert.deepEqual(run(fleet, [fleet.enrol('control-plane'), fleet.sign(beat('control-plane'))]), [
    'malformed',
    'malformed',
  ]);
});
