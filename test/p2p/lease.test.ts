import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SigningKey } from '../../signing/index.ts';
import { WaveGateFailedError, type SlotflowPeer } from '../../p2p/index.ts';
import type { RolloutPlanInput, SignedPlan } from '../../schema/index.ts';
import { cleanupDirs, controlPlaneKey, startMesh, stopAll, testPlan } from './helpers.ts';

let key: SigningKey;
let peers: SlotflowPeer[];

before(async () => {
  key = await controlPlaneKey();
  peers = await startMesh(6, key, () => ({ republish: { leaseMs: 500 } }));
});

after(async () => {
  await stopAll(peers ?? []);
  await cleanupDirs();
});

function planFor(rolloutId: string, waves: string[][], extra: Partial<RolloutPlanInput> = {}): SignedPlan {
  return testPlan(key, rolloutId, waves, {
    peerIds: Object.fromEntries(peers.map((p) => [p.nodeId, p.peerId])),
    ...extra,
  });
}

test('lease - with maxUnavailable=2 six nodes all reboot, never more than two at once', async () => {
  const signed = planFor('r-lease', [peers.map((p) => p.nodeId)]);
  const intervals: { nodeId: string; start: number; end: number }[] = [];
  await Promise.all(
    peers.map(async (p) => {
      const lease = await p.coordinator(signed).acquire({ signal: AbortSignal.timeout(20_000) });
      const start = Date.now();
      await sleep(150 + Math.random() * 250); // reboot and health checks
      intervals.push({ nodeId: p.nodeId, start, end: Date.now() });
      await lease.release('succeeded');
    }),
  );
  assert.equal(intervals.length, 6);
  const edges = intervals.flatMap((i) => [
    { t: i.start, d: 1 },
    { t: i.end, d: -1 },
  ]);
  edges.sort((a, b) => a.t - b.t || a.d - b.d);
  let holding = 0;
  let most = 0;
  for (const e of edges) most = Math.max(most, (holding += e.d));
  assert.equal(most, 2, `intervals: ${JSON.stringify(intervals)}`);
});

test('lease - a later wave starts only after the earlier wave reported success over gossip', async () => {
  const [canary, ...rest] = peers;
  const signed = planFor('r-waves', [[canary!.nodeId], rest.map((p) => p.nodeId)]);
  const started: string[] = [];
  const waiting = rest.map(async (p) => {
    const lease = await p.coordinator(signed).acquire({ signal: AbortSignal.timeout(20_000) });
    started.push(p.nodeId);
    await lease.release('succeeded');
  });
  const lease = await canary!.coordinator(signed).acquire();
  await sleep(600);
  assert.deepEqual(started, [], 'nobody of wave 1 may start while the canary holds its turn');
  await lease.release('succeeded');
  await Promise.all(waiting);
  assert.equal(started.length, rest.length);
});

test('lease - a failed canary breaches the gate and the next wave does not start', async () => {
  const [canary, ...rest] = peers;
  const signed = planFor('r-gate', [[canary!.nodeId], rest.map((p) => p.nodeId)]);
  // Settled from the start: a waiter may be refused before the canary's release returns.
  const outcomes = Promise.allSettled(
    rest.map((p) => p.coordinator(signed).acquire({ signal: AbortSignal.timeout(20_000) })),
  );
  const lease = await canary!.coordinator(signed).acquire();
  await lease.release('failed');
  const results = await outcomes;
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.ok(r.reason instanceof WaveGateFailedError, String(r.reason));
    assert.equal(r.reason.failed, 1);
  }
});

test('lease - a dead node holds up its chain only until its turn surely ended', async () => {
  // Chain of three at maxUnavailable 1; the first never shows up.
  const [dead, second, third] = peers;
  const signed = planFor('r-dead', [[dead!.nodeId, second!.nodeId, third!.nodeId]], {
    maxUnavailable: 1,
    // Windows wide enough that a busy machine's event-loop and gossip lag does not make `second`
    // or `third` forfeit (seen with a 3 s start window at load 10).
    leaseTtlMs: 3_000,
    startWindowMs: 6_000,
    clockSkewMs: 100,
  });
  const t0 = Date.parse(signed.plan.startsAt);
  const lease = await second!.coordinator(signed).acquire({ signal: AbortSignal.timeout(30_000) });
  const waited = Date.now() - t0;
  assert.ok(
    waited >= 6_000 + 3_000 + 100,
    `second started ${waited} ms after the plan start, before the dead node's turn ended`,
  );
  await lease.release('succeeded');
  const next = await third!.coordinator(signed).acquire({ signal: AbortSignal.timeout(10_000) });
  await next.release('succeeded');
  // The dead node, back too late, must not take its turn.
  await assert.rejects(dead!.coordinator(signed).acquire(), /forfeits|already finished/);
});
