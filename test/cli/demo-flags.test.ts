// `slotflow demo` flag checks that refuse before anything starts (no stack, no VM).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../helpers/cli.ts';

test('demo flags - --inject-failure boot needs --vm', async () => {
  const r = await runCli(['demo', '--inject-failure', 'boot']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--inject-failure boot needs --vm/);
});

test('demo flags - --inject-failure takes health or boot', async () => {
  const r = await runCli(['demo', '--vm', '--inject-failure', 'disk']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--inject-failure: expected health or boot, got 'disk'/);
});

test('demo flags - --vm runs at most 4 VMs', async () => {
  const r = await runCli(['demo', '--vm', '--nodes', '5', '--inject-failure']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--nodes: expected a whole number from 1 to 4 \(QEMU VMs\), got '5'/);
});
