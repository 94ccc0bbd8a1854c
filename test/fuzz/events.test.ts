// Fuzz: node events as the control plane reads them from the event stream — the DomainEvent
// schema, then the trust reducer (trust/reducer.ts: enrolment, the node's signature, its event
// number) — and enrolment requests (NodeEnrollmentRequested, signed by the key they present).
// Inputs are mutations of properly signed events. Properties: the reducer never throws, a changed
// signed event is refused (only the untouched one, or changes its signature does not cover, pass),
// a refusal leaves the trust state as it was, and the good event still passes afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import {
  DomainEvent,
  canonicalJson,
  isNodeEvent,
  describeIssues,
  type DomainEventInput,
} from '../../schema/index.ts';
import { signNodeEvent } from '../../signing/index.ts';
import { newNodeIdentity } from '../../simulator/identity.ts';
import { applyTrust, emptyTrustState, type TrustState } from '../../trust/index.ts';
import { SignedFleet } from '../helpers/signed-events.ts';
import { assertNamesField, fuzz, mutationsOf, randomJson, type Mutation } from './harness.ts';

const at = '2026-11-22T10:00:00.000Z';
const fleet = new SignedFleet();
const enrolled = fleet.enrol('n-1');
const heartbeat = fleet.sign({
  v: 1,
  id: randomUUID(),
  at,
  type: 'NodeHeartbeat',
  nodeId: 'n-1',
  version: '1.0.0',
  activeSlot: 'a',
  state: 'idle',
} as DomainEventInput);
const committed = fleet.sign({
  v: 1,
  id: randomUUID(),
  at,
  type: 'UpgradeCommitted',
  nodeId: 'n-1',
  rolloutId: 'r-1',
  commandId: 'r-1:n-1:upgrade',
  version: '2.0.0',
  digest: `sha256:${'ab'.repeat(32)}`,
  slot: 'b',
} as unknown as DomainEventInput);
const identity = newNodeIdentity();
const request = DomainEvent.parse(
  signNodeEvent(
    {
      v: 1,
      id: randomUUID(),
      at,
      type: 'NodeEnrollmentRequested',
      nodeId: 'n-2',
      publicKey: identity.publicKey,
      labels: { site: 'north' },
      seq: 1,
    } as never,
    identity,
  ),
);

/** A trust state in which n-1 is enrolled (and nothing else happened). */
function enrolledState(): TrustState {
  const state = emptyTrustState();
  const v = applyTrust(state, 1, enrolled, fleet.trustedKeys);
  assert.ok(v.ok);
  return state;
}

function snapshot(state: TrustState): unknown {
  return JSON.parse(JSON.stringify([...state.nodes.entries()]));
}

/** Decodes as the event log does, then runs the trust reducer; returns the verdict. */
function readEvent(raw: unknown, state: TrustState, mutations: readonly Mutation[]) {
  const parsed = DomainEvent.safeParse(raw);
  if (!parsed.success) {
    const problems = describeIssues(parsed.error.issues, raw).join('; ');
    assert.ok(problems.length > 0);
    assertNamesField(problems, mutations, 'event');
    return { decoded: false as const };
  }
  return {
    decoded: true as const,
    event: parsed.data,
    verdict: applyTrust(state, 2, parsed.data, fleet.trustedKeys),
  };
}

const signedEvents = [heartbeat, committed];
test('fuzz - a changed signed node event is refused by the trust reducer and changes nothing', async () => {
  const arb = fc.oneof(
    {
      weight: 8,
      arbitrary: fc
        .constantFrom(...signedEvents)
        .chain((e) => mutationsOf(e).map((m) => ({ from: e, ...m }))),
    },
    {
      weight: 1,
      arbitrary: randomJson.map((value) => ({ from: undefined, value, mutations: [] as Mutation[] })),
    },
  );
  await fuzz('node-events', arb, ({ from, value, mutations }) => {
    const state = enrolledState();
    const before = snapshot(state);
    const read = readEvent(value, state, mutations);
    if (read.decoded && read.verdict.ok) {
      // Rollout events are not the reducer's to check (their own signatures are elsewhere).
      if (!isNodeEvent(read.event)) return;
      assert.ok(from, 'random JSON passed the trust reducer as a node event');
      // A node event that passes is the signed one (minus fields the schema drops).
      const { id: _a, ...got } = read.event as Record<string, unknown>;
      const { id: _b, ...want } = from as Record<string, unknown>;
      assert.equal(canonicalJson(got), canonicalJson(want), 'a changed event passed the trust check');
    } else {
      if (read.decoded && !read.verdict.ok) assert.ok(read.verdict.message.length > 0);
      assert.ok(isDeepStrictEqual(snapshot(state), before), 'a refused event changed the trust state');
      // The untouched event still passes after the refused copy.
      if (from)
        assert.ok(applyTrust(state, 3, from, fleet.trustedKeys).ok, 'the good event no longer passes');
    }
  });
});

test('fuzz - an enrolment request passes only as its key signed it', async () => {
  const arb = fc.oneof(
    { weight: 8, arbitrary: mutationsOf(request) },
    { weight: 1, arbitrary: randomJson.map((value) => ({ value, mutations: [] as Mutation[] })) },
  );
  await fuzz('enrolment-requests', arb, ({ value, mutations }) => {
    const state = enrolledState();
    const before = snapshot(state);
    const read = readEvent(value, state, mutations);
    if (read.decoded && read.verdict.ok && read.verdict.changed) {
      assert.equal(read.event.type, 'NodeEnrollmentRequested');
      const { id: _a, ...got } = read.event as Record<string, unknown>;
      const { id: _b, ...want } = request as Record<string, unknown>;
      assert.equal(canonicalJson(got), canonicalJson(want), 'a changed request made a node pending');
      assert.equal(state.nodes.get('n-2')?.status, 'pending');
    } else if (!(read.decoded && read.verdict.ok)) {
      assert.ok(isDeepStrictEqual(snapshot(state), before), 'a refused request changed the trust state');
    }
  });
});
