import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MIN_PLAN_LIFETIME_MS, planSpanMs, planTimes } from '../../activities/plan.ts';
import { RolloutPlan, RolloutSpec } from '../../schema/index.ts';
import { holdDelayMs } from '../../workers/event-bridge.ts';
import {
  describePlan,
  fallbackWaves,
  planRequest,
  remainingThreshold,
} from '../../workflows/fallback-plan.ts';

const waves = [['a1'], ['b1', 'b2', 'b3'], ['c1', 'c2']];
const hour = 3_600_000;

test('fallback plan - covers the unstarted nodes of the current wave, then every later wave', () => {
  const started = new Set(['b1']);
  assert.deepEqual(
    fallbackWaves(waves, 1, (id) => !started.has(id), false),
    [
      ['b2', 'b3'],
      ['c1', 'c2'],
    ],
  );
  assert.deepEqual(
    fallbackWaves(waves, 0, () => true, false),
    waves,
  );
});

test('fallback plan - stops before a wave that waits for an approval', () => {
  assert.deepEqual(
    fallbackWaves(waves, 0, () => true, true),
    [['a1']],
  );
  assert.deepEqual(
    fallbackWaves(waves, 1, () => true, true),
    [['b1', 'b2', 'b3']],
  );
});

test('fallback plan - nothing left to start in the current wave gives no plan', () => {
  assert.deepEqual(
    fallbackWaves(waves, 0, (id) => id !== 'a1', false),
    [],
  );
});

test('fallback plan - a count threshold shrinks by the failures already charged; a percentage stays', () => {
  assert.deepEqual(remainingThreshold({ type: 'count', count: 3 }, 2), { type: 'count', count: 1 });
  assert.deepEqual(remainingThreshold({ type: 'count', count: 1 }, 4), { type: 'count', count: 0 });
  assert.deepEqual(remainingThreshold({ type: 'percent', percent: 10 }, 4), { type: 'percent', percent: 10 });
});

test('fallback plan - the request carries what the Upgrade commands carry and the phase limits', () => {
  const spec = RolloutSpec.parse({
    id: 'r-1',
    image: { type: 'published', digest: `sha256:${'2'.repeat(64)}` },
    version: '2.0.0',
    maxUnavailable: 3,
    failureThreshold: '2',
    timeouts: { accept: '30s', write: '15m', reboot: '10m', health: '5m' },
  });
  const image = {
    type: 'oci' as const,
    reference: 'registry.example/os:2',
    digest: `sha256:${'2'.repeat(64)}`,
    version: '2.0.0',
  };
  const request = planRequest({
    spec,
    index: 1,
    waves: [['b1']],
    image,
    manifestDigest: image.digest,
    failedSoFar: 1,
    withdraw: false,
  });
  assert.deepEqual(request, {
    rolloutId: 'r-1',
    firstWave: 1,
    waves: [['b1']],
    maxUnavailable: 3,
    failureThreshold: { type: 'count', count: 1 },
    manifestDigest: image.digest,
    upgrade: { image, manifestDigest: image.digest, allowDowngrade: false, healthChecks: [] },
    leaseTtlMs: 15 * 60_000,
    startWindowMs: 30_000 + 15 * 60_000,
  });
  const withdrawn = planRequest({
    spec,
    index: 1,
    waves: [['b1']],
    image,
    manifestDigest: image.digest,
    failedSoFar: 0,
    withdraw: true,
  });
  assert.equal(withdrawn.upgrade, undefined);
  assert.equal(describePlan(1, [['b1'], ['c1', 'c2']]), 'waves 2-3, 3 nodes');
  assert.equal(describePlan(0, [['a1']]), 'wave 1, 1 node');
});

test('fallback plan - lives twice its worst-case span, at least an hour, within the maintenance window', () => {
  const now = Date.parse('2026-11-22T10:00:00Z');
  const plan = RolloutPlan.parse({
    v: 1,
    rolloutId: 'r-1',
    manifestDigest: `sha256:${'2'.repeat(64)}`,
    waves: [['a1'], ['b1', 'b2', 'b3']],
    maxUnavailable: 2,
    failureThreshold: '1',
    issuedAt: new Date(now).toISOString(),
    startsAt: new Date(now).toISOString(),
    expiresAt: new Date(now + hour).toISOString(),
    leaseTtlMs: 20 * 60_000,
    startWindowMs: 40 * 60_000,
  });
  // Turns of an hour each: one for the first wave, two for the second.
  assert.equal(planSpanMs(plan), 3 * hour);
  assert.deepEqual(planTimes(now, 3 * hour, undefined), { startsAt: now, expiresAt: now + 6 * hour });
  assert.deepEqual(planTimes(now, 60_000, undefined), {
    startsAt: now,
    expiresAt: now + MIN_PLAN_LIFETIME_MS,
  });
  // Outside the window it starts when the window opens and ends when it closes.
  assert.deepEqual(planTimes(now, 3 * hour, { start: '12:00', duration: 2 * hour }), {
    startsAt: now + 2 * hour,
    expiresAt: now + 4 * hour,
  });
  assert.deepEqual(planTimes(now, 60_000, { start: '09:30', duration: 4 * hour }), {
    startsAt: now,
    expiresAt: now + hour,
  });
});

test('event bridge - a held event is offered again after 1 s, then longer, at most every 10 s', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 50].map(holdDelayMs),
    [1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000],
  );
});
