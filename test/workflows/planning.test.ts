import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWaves, type WaveStep } from '../../schema/index.ts';
import { msUntilWindow, planWaves, windowAround } from '../../workflows/planning.ts';

const ids = (n: number) => Array.from({ length: n }, (_, i) => `n${i}`);
const steps = (text: string) => parseWaves(text) as WaveStep[];

test('planning - cumulative waves split the targets in order', () => {
  assert.deepEqual(
    planWaves(ids(50), steps('1,10%,100%')).map((w) => w.length),
    [1, 4, 45],
  );
  assert.deepEqual(
    planWaves(ids(6), steps('1,50%,100%')).map((w) => w.length),
    [1, 2, 3],
  );
  assert.deepEqual(
    planWaves(ids(1000), steps('1,10%,50%,100%')).map((w) => w.length),
    [1, 99, 400, 500],
  );
  assert.deepEqual(planWaves(ids(6), steps('1,50%,100%')).flat(), ids(6));
});

test('planning - steps that reach no further are dropped and the last wave takes the rest', () => {
  assert.deepEqual(
    planWaves(ids(3), steps('1,10%,50%,100%')).map((w) => w.length),
    [1, 1, 1],
  );
  assert.deepEqual(
    planWaves(ids(2), steps('5,100%')).map((w) => w.length),
    [2],
  );
  assert.deepEqual(planWaves([], steps('1,100%')), []);
});

test('planning - maintenance window: 0 inside, time to the next opening outside', () => {
  const day = Date.parse('2026-11-22T00:00:00Z');
  const window = { start: '02:00', duration: 3_600_000 };
  assert.equal(msUntilWindow(day + 2.5 * 3_600_000, window), 0);
  assert.equal(msUntilWindow(day + 1 * 3_600_000, window), 3_600_000);
  assert.equal(msUntilWindow(day + 4 * 3_600_000, window), 22 * 3_600_000);
  // A window that runs past midnight still counts after midnight.
  assert.equal(msUntilWindow(day + 0.5 * 3_600_000, { start: '23:00', duration: 7_200_000 }), 0);
  assert.equal(msUntilWindow(day, undefined), 0);
});

test('planning - the window around now: the open one, else the next', () => {
  const day = Date.parse('2026-11-22T00:00:00Z');
  const hour = 3_600_000;
  const window = { start: '02:00', duration: hour };
  assert.deepEqual(windowAround(day + 2.5 * hour, window), {
    opensAt: day + 2 * hour,
    closesAt: day + 3 * hour,
  });
  assert.deepEqual(windowAround(day + 4 * hour, window), {
    opensAt: day + 26 * hour,
    closesAt: day + 27 * hour,
  });
  assert.deepEqual(windowAround(day + 0.5 * hour, { start: '23:00', duration: 2 * hour }), {
    opensAt: day - hour,
    closesAt: day + hour,
  });
});
