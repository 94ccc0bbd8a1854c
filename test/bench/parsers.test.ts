// The benchmark suite's pure parts: reading the peers' output, judging ratios, and the contract
// with the other parts' bench scripts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { externalBench, parseScriptOutput } from '../../bench/external.ts';
import { GoalKind, measured, verdictOf, type FigureSpec } from '../../bench/figure.ts';
import { parseNatsBenchCsv } from '../../bench/natscli.ts';
import { parseOpensslSpeed } from '../../bench/openssl.ts';
import { percentile } from '../../bench/stats.ts';
import type { BenchContext } from '../../bench/suite.ts';

const spec: FigureSpec = {
  id: 'demo-rate',
  title: 'demo rate',
  comparedWith: 'a peer',
  goal: { kind: GoalKind.ratioAtLeast, target: 0.5, text: '≥ 0.5' },
};

test('bench parsers - nats bench CSV rows give the rate per client', () => {
  const csv =
    '#RunID,ClientID,MsgCount,MsgBytes,MsgsPerSec,BytesPerSec,DurationSecs,MinLatencyMicroSecs\n' +
    'abc,P0,10002,1500000,8821,2646478.8,0.566791,21.5\n' +
    'abc,P1,10002,1500000,8000,2400000.0,0.6,20.1\n';
  const rows = parseNatsBenchCsv(csv);
  assert.equal(rows.length, 2);
  assert.deepEqual(rows[0], {
    clientId: 'P0',
    msgs: 10002,
    msgsPerSec: 8821,
    bytesPerSec: 2646478.8,
    durationSecs: 0.566791,
  });
  assert.throws(() => parseNatsBenchCsv('#RunID,Other\nx,y\n'), /no ClientID column/);
});

test('bench parsers - openssl speed -mr gives bytes per second from its +F line', () => {
  const out = '+DT:sha256:1:1048576\n+R:461:sha256:0.290000\n+H:1048576\n+F:6:sha256:1666874262.07\n';
  assert.equal(parseOpensslSpeed(out), 1666874262.07);
  assert.throws(() => parseOpensslSpeed('+H:1048576\n'), /no "\+F/);
});

test('bench figures - ratios are judged against the goal kind', () => {
  assert.equal(verdictOf(spec.goal, 0.6), 'met');
  assert.equal(verdictOf(spec.goal, 0.4), 'missed');
  assert.equal(verdictOf({ kind: GoalKind.overheadAtMost, target: 0.05, text: '' }, 1.04), 'met');
  assert.equal(verdictOf({ kind: GoalKind.overheadAtMost, target: 0.05, text: '' }, 1.2), 'missed');
  assert.equal(verdictOf({ kind: GoalKind.ratioAtMost, target: 1.1, text: '' }, 1.05), 'met');
  assert.equal(verdictOf({ kind: GoalKind.report, text: 'report' }, 12), 'reported');
  const f = measured(spec, { amount: 30, unit: 'msgs/s' }, { amount: 100, unit: 'msgs/s' });
  assert.equal(f.ratio, 0.3);
  assert.equal(f.verdict, 'missed');
});

test('bench stats - percentiles by nearest rank', () => {
  const samples = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(samples, 50), 50);
  assert.equal(percentile(samples, 99), 99);
  assert.equal(percentile(samples, 100), 100);
  assert.equal(percentile([], 99), undefined);
});

test('bench external - a script output is found as the last JSON line with figures', () => {
  const figure = measured(spec, { amount: 1, unit: 'x' }, { amount: 2, unit: 'x' });
  const out = `starting\n${JSON.stringify({ figures: [figure] })}\n`;
  assert.deepEqual(parseScriptOutput(out).figures, [figure]);
  assert.throws(() => parseScriptOutput('{"rate": 3}\n'), /expected \{ figures: Figure\[\] \} shape/);
});

test('bench external - a missing script, a conforming one and a silent one are each reported', async () => {
  const root = await mkdtemp(join(tmpdir(), 'slotflow-bench-ext-'));
  try {
    await mkdir(join(root, 'bench'));
    const other: FigureSpec = { ...spec, id: 'demo-other', title: 'demo other' };
    const ctx: BenchContext = {
      size: 'quick',
      root,
      workDir: root,
      natscli: () => Promise.resolve({ ok: false, reason: 'not needed' }),
      say: () => undefined,
    };
    const bench = externalBench({ name: 'demo', script: 'demo.ts', owner: 'tests', figures: [spec, other] });

    const missing = await bench.run(ctx);
    assert.deepEqual(
      missing.map((f) => [f.id, f.status]),
      [
        ['demo-rate', 'unavailable'],
        ['demo-other', 'unavailable'],
      ],
    );
    assert.match(missing[0]!.reason!, /not available yet: bench\/demo.ts/);

    const figure = measured(spec, { amount: 3, unit: 'x' }, { amount: 4, unit: 'x' });
    await writeFile(
      join(root, 'bench/demo.ts'),
      `process.stdout.write(JSON.stringify({ figures: [${JSON.stringify(figure)}] }) + '\\n');\n`,
    );
    const partial = await bench.run(ctx);
    assert.deepEqual(partial[0], figure);
    assert.equal(partial[1]?.status, 'failed');
    assert.match(partial[1]!.reason!, /did not report demo-other/);

    await writeFile(join(root, 'bench/demo.ts'), `process.stdout.write('hello\\n');\n`);
    const silent = await bench.run(ctx);
    assert.ok(
      silent.every((f) => f.status === 'failed' && /no figures in the runner's format/.test(f.reason!)),
    );
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
