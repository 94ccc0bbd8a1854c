import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openNodeBook, plannedNodes } from '../../workflows/node-book.ts';
import { currentState, initialState, type LegacyRolloutState } from '../../workflows/rollout-state.ts';

const waves = [['a1'], ['b1', 'b2', 'b3'], ['c1', 'c2']];
const versions: Record<string, string> = { a1: '1.0.0', b1: '1.0.0', b2: '1.1.0', b3: '1.1.0', c1: '1.0.0' };

test('node book - counts and wave tallies follow every change', () => {
  const book = openNodeBook(plannedNodes(waves, (id) => versions[id]));
  assert.deepEqual(book.counts(), { targets: 6, upgraded: 0, failed: 0, running: 0, pending: 6 });
  assert.deepEqual(book.waveIds(1), ['b1', 'b2', 'b3']);
  assert.deepEqual(book.waveRange(2), [4, 6]);
  assert.equal(book.waveOf(3), 1);
  assert.equal(book.indexOf('c2'), 5);

  book.set(1, 'running');
  book.set(2, 'running');
  assert.deepEqual(book.counts(), { targets: 6, upgraded: 0, failed: 0, running: 2, pending: 4 });
  book.set(1, 'upgraded');
  book.set(2, 'timed-out', 'no progress within 1000 ms while health checks');
  assert.deepEqual(book.counts(), { targets: 6, upgraded: 1, failed: 1, running: 0, pending: 4 });
  assert.deepEqual(book.tally(1), { succeeded: 1, failed: 1 });
  assert.deepEqual(book.tally(2), { succeeded: 0, failed: 0 });
  // A rolled-back node is neither upgraded nor failed any more.
  book.set(1, 'rolled-back');
  assert.deepEqual(book.tally(1), { succeeded: 0, failed: 1 });
  assert.equal(book.counts().upgraded, 0);
});

test('node book - what it carries opens to the same nodes, details and prior versions', () => {
  const book = openNodeBook(plannedNodes(waves, (id) => versions[id]));
  book.set(0, 'upgraded');
  book.set(1, 'fell-back', 'health check failed');
  book.set(2, 'rejected', 'health check failed');
  book.set(3, 'running');
  const carried = book.encode();
  assert.equal(carried.states, 'ufr*..');
  assert.deepEqual(carried.details, [['health check failed', [1, 2]]]);
  assert.deepEqual(carried.fromVersions, [
    ['1.0.0', 2],
    ['1.1.0', 2],
    ['1.0.0', 1],
    ['', 1],
  ]);
  const again = openNodeBook(JSON.parse(JSON.stringify(carried)));
  assert.deepEqual(again.nodesView(), book.nodesView());
  assert.deepEqual(again.counts(), book.counts());
  assert.equal(again.fromVersion(2), '1.1.0');
  assert.equal(again.fromVersion(5), undefined, 'c2 ran no known version');
  assert.deepEqual(again.nodesView()['b1'], { wave: 1, state: 'fell-back', detail: 'health check failed' });
  assert.deepEqual(again.nodesView()['c1'], { wave: 2, state: 'pending' });
});

test('node book - ten thousand nodes carry in a few bytes each', () => {
  const ids = Array.from({ length: 10_000 }, (_, i) => `sim-${String(i + 1).padStart(5, '0')}`);
  const planned = [ids.slice(0, 1), ids.slice(1, 1_000), ids.slice(1_000, 5_000), ids.slice(5_000)];
  const book = openNodeBook(plannedNodes(planned, () => '1.0.0'));
  for (let i = 0; i < 7_000; i++)
    book.set(i, i % 100 === 0 ? 'failed' : 'upgraded', i % 100 ? undefined : 'x');
  const bytes = JSON.stringify({ ...initialState('r', '2.0.0'), nodes: book.encode() }).length;
  assert.ok(bytes < 16 * 10_000, `carried state is ${bytes} bytes`);
  assert.deepEqual(book.counts(), {
    targets: 10_000,
    upgraded: 6_930,
    failed: 70,
    running: 0,
    pending: 3_000,
  });
});

test('rollout state - the whole-view state of an older run is converted, nothing lost', () => {
  const legacy: LegacyRolloutState = {
    view: {
      rolloutId: 'r-old',
      status: 'running',
      version: '2.0.0',
      imageDigest: `sha256:${'a'.repeat(64)}`,
      currentWave: 1,
      waves: [
        { index: 0, nodeIds: ['a1'], status: 'passed', succeeded: 1, failed: 0 },
        { index: 1, nodeIds: ['b1', 'b2'], status: 'running', succeeded: 0, failed: 1 },
      ],
      nodes: {
        a1: { wave: 0, state: 'upgraded' },
        b1: { wave: 1, state: 'timed-out', detail: 'no progress' },
        b2: { wave: 1, state: 'pending' },
      },
      counts: { targets: 3, upgraded: 1, failed: 1, running: 0, pending: 1, skipped: 1 },
      skipped: [{ nodeId: 'z1', reason: 'already on 2.0.0' }],
      run: 2,
    },
    eventCounter: 12,
    manifestDigest: `sha256:${'a'.repeat(64)}`,
    targets: [
      { nodeId: 'a1', version: '1.0.0' },
      { nodeId: 'b1', version: '1.0.0' },
      { nodeId: 'b2', version: '1.0.0' },
    ],
    waves: [['a1'], ['b1', 'b2']],
    waveIndex: 1,
    waveStarted: true,
    waveGatePassed: false,
    failureBaseline: 0,
    touched: ['a1', 'b1'],
    control: 'run',
    request: { by: 'policy', reason: '' },
    approved: false,
  };
  const state = currentState(legacy);
  assert.equal(state.v, 2);
  assert.equal(state.eventCounter, 12);
  assert.equal(state.head.run, 2);
  assert.equal(state.head.currentWave, 1);
  assert.deepEqual(state.waveStatus, ['passed', 'running']);
  assert.deepEqual(state.skipped, [{ reason: 'already on 2.0.0', nodeIds: ['z1'] }]);
  assert.ok(state.nodes);
  const book = openNodeBook(state.nodes);
  assert.deepEqual(book.nodesView(), legacy.view.nodes);
  assert.equal(book.fromVersion(1), '1.0.0');
  assert.deepEqual(book.tally(1), { succeeded: 0, failed: 1 });
  assert.equal(currentState(state), state, 'the current shape passes through');
});
