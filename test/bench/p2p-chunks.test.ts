// bench/p2p-chunks.ts at a tiny size keeps the runner's contract: one `{ figures }` document on
// stdout with every promised P2P figure, measured, each with its baseline and ratio. Timings
// are not asserted: they depend on the machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { z } from 'zod';
import { p2pFigures } from '../../bench/external.ts';
import { Figure } from '../../bench/figure.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

test('bench p2p-chunks - --json prints one figures document with every promised figure measured', async () => {
  const sizes = ['--image-mib', '4', '--nodes', '3', '--gossip-peers', '4', '--gossip-messages', '5'];
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      '--disable-warning=ExperimentalWarning',
      'bench/p2p-chunks.ts',
      '--json',
      ...sizes,
      '--throughput-mib',
      '4',
      '--rounds',
      '1',
    ],
    { cwd: root, timeout: 180_000, maxBuffer: 4 * 1024 * 1024 },
  );
  // The whole of stdout is the document: progress and logs went to stderr.
  const { figures } = z
    .object({ figures: z.array(Figure) })
    .strict()
    .parse(JSON.parse(stdout));
  assert.deepEqual(
    figures.map((f) => f.id),
    p2pFigures.map((f) => f.id),
  );
  for (const f of figures) {
    assert.equal(f.status, 'measured', `${f.id}: ${f.reason}`);
    assert.ok(f.value && f.comparedWith.value, `${f.id} has its value and its baseline`);
    assert.equal(typeof f.ratio, 'number', `${f.id} has a ratio`);
    assert.notEqual(f.verdict, 'n/a', `${f.id} is judged`);
  }
  const byId = new Map(figures.map((f) => [f.id, f]));
  assert.equal(byId.get('p2p-origin-egress')?.details?.['nodes'], 3);
  assert.equal(byId.get('p2p-gossip-p99')?.details?.['peers'], 4);
});

test('bench p2p-chunks - a size that is not a whole number is refused with the option named', async () => {
  await assert.rejects(
    promisify(execFile)(
      process.execPath,
      ['--disable-warning=ExperimentalWarning', 'bench/p2p-chunks.ts', '--json', '--nodes', 'many'],
      { cwd: root, timeout: 30_000 },
    ),
    (err: { code?: number; stderr?: string }) =>
      err.code === 2 && /--nodes takes a whole number of at least 2, got "many"/.test(err.stderr ?? ''),
  );
});
