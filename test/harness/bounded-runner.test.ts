// The suite's runner (scripts/run-tests.sh, what `npm test` runs) ends a test file that fails
// and then would never exit: the run is red, and it ends within its bounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const RUNNER = fileURLToPath(new URL('../../scripts/run-tests.sh', import.meta.url));
const STUCK = fileURLToPath(new URL('./fixtures/stuck.fixture.ts', import.meta.url));

function run(env: Record<string, string>): Promise<{ code: number | null; ms: number; output: string }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    // Without this the inner runner would take itself for a file of this run and report to it.
    const { NODE_TEST_CONTEXT: _, ...outer } = process.env;
    const child = spawn('bash', [RUNNER, STUCK], {
      env: { ...outer, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += String(d)));
    child.stderr.on('data', (d: Buffer) => (output += String(d)));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, ms: Date.now() - t0, output }));
  });
}

test(
  'test runner - a failing file that would never exit ends the run red, within the per-test bounds',
  { timeout: 60_000 },
  async () => {
    const { code, ms, output } = await run({ SLOTFLOW_TEST_TIMEOUT_MS: '2000', SLOTFLOW_SUITE_LIMIT: '5m' });
    assert.notEqual(code, 0, output);
    assert.match(output, /an assertion that fails/);
    assert.match(output, /test timed out after 2000ms/);
    // two 2 s limits (the stuck test, the stuck hook) and the start-up of one file
    assert.ok(ms < 30_000, `the run took ${ms} ms`);
  },
);

test('test runner - a run cut off by the suite limit is red, never green', { timeout: 60_000 }, async () => {
  const { code, ms } = await run({ SLOTFLOW_TEST_TIMEOUT_MS: '600000', SLOTFLOW_SUITE_LIMIT: '3s' });
  assert.equal(code, 124, 'timeout(1) reports the cut-off');
  assert.ok(ms < 45_000, `the run took ${ms} ms`);
});
