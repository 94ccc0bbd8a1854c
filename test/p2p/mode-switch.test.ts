import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createModeSwitch, watchNatsStatus, type ModeChange } from '../../p2p/index.ts';
import { startNats } from '../helpers/servers.ts';

function fakeClock() {
  let now = 0;
  const timers: { at: number; fn: () => void; live: boolean }[] = [];
  return {
    now: () => now,
    setTimer(fn: () => void, ms: number) {
      const t = { at: now + ms, fn, live: true };
      timers.push(t);
      return { cancel: () => void (t.live = false) };
    },
    advance(ms: number) {
      now += ms;
      for (const t of timers) {
        if (t.live && t.at <= now) {
          t.live = false;
          t.fn();
        }
      }
    },
  };
}

test('mode switch - NATS lost for the grace period moves to p2p, regained moves back', () => {
  const clock = fakeClock();
  const changes: ModeChange[] = [];
  const mode = createModeSwitch({ graceMs: 20_000, onChange: (c) => changes.push(c), ...clock });
  assert.equal(mode.mode, 'nats');
  mode.observe(false);
  clock.advance(19_999);
  assert.equal(mode.mode, 'nats');
  clock.advance(1);
  assert.equal(mode.mode, 'p2p');
  mode.observe(false); // still lost: no new change
  mode.observe(true);
  assert.equal(mode.mode, 'nats');
  assert.deepEqual(
    changes.map((c) => [c.previous, c.mode, c.reason]),
    [
      ['nats', 'p2p', 'NATS unreachable for 20s (grace 20s)'],
      ['p2p', 'nats', 'NATS reachable again'],
    ],
  );
});

test('mode switch - a blip shorter than the grace period is not a switch', () => {
  const clock = fakeClock();
  const changes: ModeChange[] = [];
  const mode = createModeSwitch({ graceMs: 5_000, onChange: (c) => changes.push(c), ...clock });
  mode.observe(false);
  clock.advance(4_000);
  mode.observe(true);
  clock.advance(10_000);
  mode.observe(false);
  clock.advance(4_999);
  assert.equal(mode.mode, 'nats');
  assert.equal(changes.length, 0);
});

test('mode switch - fed by a real NATS connection losing and regaining its server', async () => {
  const nats = await startNats();
  try {
    const nc = await nats.connect();
    const changes: ModeChange[] = [];
    const mode = createModeSwitch({ graceMs: 300, onChange: (c) => changes.push(c) });
    const watching = watchNatsStatus(nc, mode);
    await nats.kill();
    const settle = async (want: string): Promise<string> => {
      for (let i = 0; i < 100 && mode.mode !== want; i++) await sleep(50);
      return mode.mode;
    };
    assert.equal(await settle('p2p'), 'p2p');
    await nats.restart();
    assert.equal(await settle('nats'), 'nats');
    assert.deepEqual(
      changes.map((c) => c.mode),
      ['p2p', 'nats'],
    );
    await nc.close();
    await watching;
    mode.stop();
  } finally {
    await nats.stop();
  }
});

test('mode switch - the mode is settled only once NATS was seen reachable or the grace ran out', async () => {
  const clock = fakeClock();
  const started = createModeSwitch({ graceMs: 2_000, onChange: () => {}, ...clock });
  // A node that just (re)started without NATS: nats by default, but not settled.
  started.observe(false);
  let settled: string | undefined;
  void started.settled().then((m) => (settled = m));
  await sleep(0);
  assert.equal(settled, undefined, 'not settled while the grace runs');
  clock.advance(2_000);
  await sleep(0);
  assert.equal(settled, 'p2p');

  const reachable = createModeSwitch({ graceMs: 2_000, onChange: () => {}, ...clock });
  reachable.observe(false);
  const waiting = reachable.settled();
  reachable.observe(true);
  assert.equal(await waiting, 'nats');
  assert.equal(await reachable.settled(), 'nats');

  // A loss in progress is not NATS mode for a node asking whether it may reboot without a turn.
  reachable.observe(false);
  let again: string | undefined;
  void reachable.settled().then((m) => (again = m));
  await sleep(0);
  assert.equal(again, undefined);
  reachable.observe(true);
  await sleep(0);
  assert.equal(again, 'nats');

  const aborted = new AbortController();
  const never = createModeSwitch({ graceMs: 2_000, onChange: () => {}, ...clock });
  never.observe(false);
  const pending = never.settled(aborted.signal);
  aborted.abort(new Error('stopping'));
  await assert.rejects(pending, /stopping/);
});
