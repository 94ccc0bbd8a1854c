// The power-cut campaign's planning and its lost-event check, without VMs.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CUT_WINDOW,
  FINAL,
  REQUIRED_CHAIN,
  RESUMABLE,
  missingFromChain,
  planUpgradeCuts,
  seededRandom,
} from '../../lab/power-cut.ts';

describe('power-cut campaign plans', () => {
  test('a seed gives the same plans; plans cut in upgrade order, at most one final cut, last', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const order = [...RESUMABLE, ...FINAL];
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const plan = planUpgradeCuts(a);
      assert.deepEqual(planUpgradeCuts(b), plan);
      assert.ok(plan.length >= 1, 'never empty');
      const positions = plan.map((c) => order.indexOf(c.point));
      assert.deepEqual(
        [...positions].sort((x, y) => x - y),
        positions,
        `in upgrade order: ${JSON.stringify(plan)}`,
      );
      assert.ok(plan.filter((c) => FINAL.includes(c.point)).length <= 1);
      assert.ok(
        plan.slice(0, -1).every((c) => RESUMABLE.includes(c.point)),
        'a final cut comes last',
      );
      for (const c of plan) {
        const w = CUT_WINDOW[c.point];
        assert.ok(c.delayMs >= w.minS * 1000 && c.delayMs <= w.maxS * 1000, JSON.stringify(c));
        seen.add(c.point);
      }
    }
    assert.deepEqual([...seen].sort(), [...order].sort(), 'every point gets cut');
    assert.notDeepEqual(planUpgradeCuts(seededRandom(1)), planUpgradeCuts(seededRandom(2)));
  });

  test('a lost event of the chain is found; re-sent events are not losses', () => {
    const chain = REQUIRED_CHAIN.committed;
    assert.deepEqual(missingFromChain(chain, chain), []);
    const resent = [...chain.slice(0, 3), ...chain.slice(1, 3), ...chain.slice(3)];
    assert.deepEqual(missingFromChain(resent, chain), []);
    for (const lost of chain) {
      assert.deepEqual(
        missingFromChain(
          chain.filter((t) => t !== lost),
          chain,
        ),
        [lost],
      );
    }
    // Out of order is not the chain either: a commit before the trial boot was armed.
    assert.deepEqual(missingFromChain(['UpgradeCommitted', ...chain.slice(0, -1)], chain), [
      'UpgradeCommitted',
    ]);
  });
});
