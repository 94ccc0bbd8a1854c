// The benchmark suite's plumbing at a tiny size: the runner starts every bench, writes a results
// file that validates, and every figure names what it is compared with. Timings are not asserted:
// they depend on the machine; the shape must not rot.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BENCHES } from '../../bench/runner.ts';
import { readResults, type Results } from '../../bench/results.ts';
import { renderMarkdown } from '../../bench/render.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
let dir: string;
let results: Results;
let stdout: string;
let child: ChildProcess | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'slotflow-bench-test-'));
  const out = join(dir, 'latest.json');
  const running = promisify(execFile)(
    process.execPath,
    ['--disable-warning=ExperimentalWarning', join(root, 'bench/runner.ts'), '--tiny', '--out', out],
    {
      cwd: root,
      timeout: 120_000,
      maxBuffer: 16 * 1024 * 1024,
      env: { ...process.env, SLOTFLOW_LOG_LEVEL: 'warn' },
    },
  );
  child = running.child;
  const ran = await running;
  stdout = ran.stdout;
  results = await readResults(out);
});

after(async () => {
  // Still running when the run was cut short: the runner exits on SIGTERM, stopping its workers.
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('bench - a tiny run writes a results file that validates, with the machine it ran on', () => {
  assert.equal(results.size, 'tiny');
  assert.ok(results.machine.cores > 0);
  assert.ok(results.machine.cpuModel.length > 0);
  for (const tool of ['node', 'nats-server', 'temporal', 'natscli', 'openssl'])
    assert.ok(results.machine.versions[tool], `the machine lists the ${tool} version`);
  assert.deepEqual(
    results.benches.map((b) => b.name),
    BENCHES.map((b) => b.name),
  );
});

test('bench - every promised figure is reported, and none crashed its bench', () => {
  const ids = results.figures.map((f) => f.id);
  for (const bench of BENCHES)
    for (const spec of bench.figures('tiny'))
      assert.ok(ids.includes(spec.id), `${bench.name} reports ${spec.id}`);
  const crashed = results.benches.filter((b) => b.error);
  assert.deepEqual(crashed, [], `benches that threw: ${JSON.stringify(crashed)}`);
});

test('bench - each figure names its comparison and goal; measured ones carry both numbers and a ratio', () => {
  for (const f of results.figures) {
    assert.ok(f.comparedWith.label.length > 0, `${f.id} says what it is compared with`);
    assert.ok(f.goal.text.length > 0, `${f.id} states its goal`);
    if (f.status === 'measured') {
      assert.ok(f.value, `${f.id} has a value`);
      assert.ok(f.comparedWith.value, `${f.id} has its baseline measured in the same run`);
      assert.equal(typeof f.ratio, 'number', `${f.id} has a ratio`);
      assert.notEqual(f.verdict, 'n/a', `${f.id} is judged`);
    } else {
      assert.ok(f.reason, `${f.id} says why it was not measured`);
    }
  }
});

test('bench - the figures that need only this repository are measured even at tiny size', () => {
  const byId = new Map(results.figures.map((f) => [f.id, f]));
  for (const id of [
    'sha256-pipeline',
    'rollout-overhead-small',
    'rollout-overhead-large',
    'command-latency-p99',
    'event-advance-p99',
    'orchestrator-node-rate',
    'history-largest-large',
    'worker-rss',
  ]) {
    assert.equal(byId.get(id)?.status, 'measured', `${id}: ${byId.get(id)?.reason}`);
  }
});

test('bench - a rollout cut off at its deadline still reports the largest history it reached', () => {
  const huge = results.figures.find((f) => f.id === 'history-largest-huge');
  assert.equal(huge?.status, 'measured', huge?.reason);
  assert.match(huge.reason ?? '', /^cut off: terminated at the 5 s deadline, after \d+ of 40 nodes/);
  assert.ok(huge.value!.amount > 0);
  assert.equal(huge.details?.['cutOff'], true);
});

test('bench - the table and the README rendering list every figure', () => {
  const markdown = renderMarkdown(results);
  for (const f of results.figures) {
    assert.ok(stdout.includes(f.title.slice(0, 20)), `the table shows ${f.id}`);
    assert.ok(markdown.includes(f.title), `the Markdown shows ${f.id}`);
  }
});
