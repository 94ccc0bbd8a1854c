import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, timetable } from '../../p2p/index.ts';
import type { NodeReports } from '../../p2p/coordination/schedule.ts';
import { RolloutPlan, type RolloutPlanInput } from '../../schema/index.ts';

const T0 = Date.parse('2026-11-22T10:00:00.000Z');

function plan(overrides: Partial<RolloutPlanInput> = {}): RolloutPlan {
  return RolloutPlan.parse({
    v: 1,
    rolloutId: 'r-sched',
    manifestDigest: `sha256:${'d'.repeat(64)}`,
    waves: [['a'], ['b', 'c', 'd', 'e']],
    maxUnavailable: 2,
    failureThreshold: { type: 'count', count: 0 },
    issuedAt: new Date(T0).toISOString(),
    expiresAt: new Date(T0 + 3_600_000).toISOString(),
    startsAt: new Date(T0).toISOString(),
    leaseTtlMs: 600,
    startWindowMs: 400,
    clockSkewMs: 50,
    ...overrides,
  });
}

function done(nodeId: string, outcome: 'succeeded' | 'failed' | 'skipped', at = T0): NodeReports {
  return {
    done: { v: 1, type: 'done', rolloutId: 'r-sched', nodeId, at: new Date(at).toISOString(), outcome },
  };
}

test('schedule - the timetable gives each chain one turn per slot, wave after wave', () => {
  const turns = timetable(plan());
  // slot = 1000 ms; wave 0 has one round, wave 1 two rounds of two chains.
  assert.deepEqual(
    [...turns.values()].map((t) => [
      t.nodeId,
      t.wave,
      t.opensAt - T0,
      t.latestStart - T0,
      t.endsBy - T0,
      t.predecessor,
    ]),
    [
      ['a', 0, 0, 400, 1000, undefined],
      ['b', 1, 1000, 1400, 2000, undefined],
      ['c', 1, 1000, 1400, 2000, undefined],
      ['d', 1, 2000, 2400, 3000, 'b'],
      ['e', 1, 2000, 2400, 3000, 'c'],
    ],
  );
});

test('schedule - reports let a turn start early; without them it waits for the fixed end', () => {
  const p = plan();
  const turns = timetable(p);
  const none = new Map<string, NodeReports>();
  assert.equal(decide(p, turns, none, 'a', T0 + 10).type, 'go');
  assert.equal(decide(p, turns, none, 'b', T0 + 10).type, 'wait');
  // a reported success: the gate opens at once, b and c (two chains) may go, d waits for b.
  const afterA = new Map([['a', done('a', 'succeeded')]]);
  assert.equal(decide(p, turns, afterA, 'b', T0 + 200).type, 'go');
  assert.equal(decide(p, turns, afterA, 'c', T0 + 200).type, 'go');
  assert.equal(decide(p, turns, afterA, 'd', T0 + 200).type, 'wait');
  // a never reported: its turn is over at endsBy + skew, and it then counts as failed.
  assert.equal(decide(p, turns, none, 'b', T0 + 1_040).type, 'wait');
  const late = decide(p, turns, none, 'b', T0 + 1_060);
  assert.equal(late.type, 'gate-failed');
});

test('schedule - a node whose window closed forfeits instead of rebooting late', () => {
  const p = plan();
  const turns = timetable(p);
  const d = decide(p, turns, new Map(), 'a', T0 + 360);
  assert.equal(d.type, 'forfeit');
  assert.equal(decide(p, turns, new Map(), 'a', T0 + 340).type, 'go');
});

test('schedule - the gate counts failures over earlier waves against the threshold', () => {
  const p = plan({ failureThreshold: { type: 'count', count: 1 } });
  const turns = timetable(p);
  const reports = new Map([['a', done('a', 'failed')]]);
  assert.equal(decide(p, turns, reports, 'b', T0 + 100).type, 'go');
  const strict = plan();
  const d = decide(strict, timetable(strict), reports, 'b', T0 + 100);
  assert.equal(d.type, 'gate-failed');
  assert.deepEqual(d.type === 'gate-failed' && [d.failed, d.executed], [1, 1]);
});

test('schedule - never more than maxUnavailable turns overlap, whatever reports arrive', () => {
  // Exhaustive over time for a bigger plan: simulate nodes that start as soon as allowed and
  // hold their turn for the whole lease, seeing every report (the fastest possible run).
  const p = plan({ waves: [['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7']], maxUnavailable: 3 });
  const turns = timetable(p);
  const reports = new Map<string, NodeReports>();
  const running = new Map<string, number>();
  let maxRunning = 0;
  for (let t = T0; t < T0 + 10_000; t += 10) {
    for (const [id, start] of running) {
      if (t - start >= p.leaseTtlMs - 100) {
        running.delete(id);
        reports.set(id, done(id, 'succeeded', t));
      }
    }
    for (const id of p.waves[0]!) {
      if (running.has(id) || reports.has(id)) continue;
      if (decide(p, turns, reports, id, t).type === 'go') running.set(id, t);
    }
    maxRunning = Math.max(maxRunning, running.size);
  }
  assert.equal(maxRunning, 3);
  assert.equal(reports.size, 7);
});

test('schedule - a turn held past its holder’s deadline is reclaimed before its fixed end', () => {
  const p = plan({
    waves: [['a', 'b', 'c']],
    failureThreshold: { type: 'count', count: 5 },
    leaseTtlMs: 1_000,
    startWindowMs: 10_000,
  });
  const turns = timetable(p);
  // c follows a in its chain. a started at T0 + 100 and then went silent: no done report ever.
  const heldByA = new Map<string, NodeReports>([
    [
      'a',
      {
        started: {
          v: 1,
          type: 'started',
          rolloutId: 'r-sched',
          nodeId: 'a',
          at: new Date(T0 + 100).toISOString(),
        },
      },
    ],
  ]);
  const before = decide(p, turns, heldByA, 'c', T0 + 100 + 1_000 + 49);
  assert.equal(before.type, 'wait');
  assert.equal(before.type === 'wait' && before.waitingFor, 'a');
  // a's own deadline (start + leaseTtl) plus the skew has passed: c may go, long before the
  // fixed end of a's turn (T0 + 11 000).
  assert.equal(decide(p, turns, heldByA, 'c', T0 + 100 + 1_000 + 50).type, 'go');
  // Unheard, a's turn lasts until its fixed end.
  assert.equal(decide(p, turns, new Map(), 'c', T0 + 5_000).type, 'wait');
  assert.equal(decide(p, turns, new Map(), 'c', T0 + 11_000 + 50).type, 'go');
});
