import { test } from 'node:test';
import assert from 'node:assert/strict';
import { acceptSeq, EMPTY_WINDOW, REPLAY_WINDOW, type ReplayWindow } from '../../trust/replay-window.ts';

function feed(
  seqs: number[],
  start: ReplayWindow = EMPTY_WINDOW,
): { window: ReplayWindow; refused: number[] } {
  let window = start;
  const refused: number[] = [];
  for (const seq of seqs) {
    const check = acceptSeq(window, seq);
    if (check.ok) window = check.window;
    else refused.push(seq);
  }
  return { window, refused };
}

test('replay window - numbers in order are each accepted once', () => {
  const { window, refused } = feed([1, 2, 3, 4, 2, 4, 1]);
  assert.equal(window.top, 4);
  assert.deepEqual(refused, [2, 4, 1]);
});

test('replay window - late numbers inside the window are accepted once, as peer relays reorder', () => {
  const { refused } = feed([5, 3, 9, 4, 1, 2, 8, 6, 7, 3, 9, 5]);
  assert.deepEqual(refused, [3, 9, 5]);
});

test('replay window - a number older than the window is refused, a jump far ahead is fine', () => {
  const { window, refused } = feed([1, 2, REPLAY_WINDOW * 3, 3, REPLAY_WINDOW * 3 - REPLAY_WINDOW + 1]);
  assert.equal(window.top, REPLAY_WINDOW * 3);
  assert.deepEqual(refused, [3]);
  const again = acceptSeq(window, REPLAY_WINDOW * 3 - REPLAY_WINDOW + 1);
  assert.equal(again.ok, false, 'the oldest number still in the window was seen');
});

test('replay window - the stored form survives JSON and keeps refusing what it saw', () => {
  const { window } = feed([10, 7, 12]);
  const stored = JSON.parse(JSON.stringify(window)) as ReplayWindow;
  assert.deepEqual(feed([7, 10, 12, 11, 8], stored).refused, [7, 10, 12]);
});

test('replay window - zero, negative and fractional numbers are refused', () => {
  assert.deepEqual(feed([0, -1, 1.5, 1]).refused, [0, -1, 1.5]);
});
