// `npm run bench`: runs every benchmark in bench/, writes bench/results/latest.json and prints
// the table. Every figure is compared with a peer measured in the same run on the same machine.
//
//   npm run bench [-- --quick | --tiny] [--only sha256,rollout] [--out FILE]
//
// --quick is a smaller version (minutes); --tiny only exercises the plumbing (the test runs it).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { defaultProvisionDeps } from '../stack/index.ts';
import { eventLogPublishBench } from './event-log-publish.ts';
import { ociConvertBench } from './oci-convert.ts';
import { agentBench, agentFootprintBench, p2pBench } from './external.ts';
import { Figure, notMeasured } from './figure.ts';
import { describeMachine } from './machine.ts';
import { provisionNatsCli, type ToolOutcome } from './natscli.ts';
import { projectorKvBench } from './projector-kv.ts';
import { renderTable, DEFAULT_RESULTS } from './render.ts';
import { RESULTS_FORMAT, Results } from './results.ts';
import { rolloutBench } from './rollout.ts';
import { sha256Bench } from './sha256.ts';
import { trustBench } from './trust.ts';
import { vmUpgradeBench } from './vm-upgrade.ts';
import { Size, type BenchContext, type BenchModule } from './suite.ts';

/** Every bench, in the order they run (the long rollouts last). */
export const BENCHES: readonly BenchModule[] = [
  sha256Bench,
  eventLogPublishBench,
  projectorKvBench,
  trustBench,
  agentBench,
  agentFootprintBench,
  p2pBench,
  ociConvertBench,
  rolloutBench,
  vmUpgradeBench,
];

/** Table order: the issue's, whatever bench reported a figure. */
const ORDER = [
  'slot-write-throughput',
  'sha256-pipeline',
  'sha256-node-crypto',
  'jetstream-publish',
  'kv-put-projector',
  'bridge-verify-rate',
  'agent-event-signing',
  'rollout-overhead-small',
  'rollout-overhead-large',
  'command-latency-p99',
  'event-advance-p99',
  'orchestrator-node-rate',
  'history-largest-large',
  'history-largest-huge',
  'agent-rss-idle',
  'agent-rss-write',
  'agent-rss-idle-light',
  'agent-rss-idle-p2p',
  'agent-rss-write-peak',
  'agent-startup',
  'worker-rss',
  'p2p-origin-egress',
  'p2p-chunk-transfer',
  'p2p-gossip-p99',
  'oci-convert',
  'vm-upgrade-overhead',
];

const rank = (f: Figure) => {
  const i = ORDER.indexOf(f.id);
  return i < 0 ? ORDER.length : i;
};

/** Runs one bench; whatever happens, every figure it promised comes back (failed if need be). */
async function runBench(
  bench: BenchModule,
  ctx: BenchContext,
): Promise<{ figures: Figure[]; error?: string }> {
  const promised = bench.figures(ctx.size);
  try {
    const figures = (await bench.run(ctx)).map((f) => Figure.parse(f));
    const missing = promised
      .filter((p) => !figures.some((f) => f.id === p.id))
      .map((p) => notMeasured(p, 'failed', `${bench.name} did not report it`));
    return { figures: [...figures, ...missing] };
  } catch (err) {
    const message = (err as Error).stack ?? String(err);
    ctx.say(`${bench.name} failed: ${message}`);
    const first = (err as Error).message?.split('\n')[0] ?? String(err);
    return {
      figures: promised.map((p) =>
        notMeasured(p, 'failed', `${bench.name} failed: ${first}`, { error: message }),
      ),
      error: first,
    };
  }
}

/** Runs the suite and returns the results (also written to `out`). */
export async function runSuite({
  size,
  only,
  out,
}: {
  size: Size;
  only?: readonly string[];
  out: string;
}): Promise<Results> {
  const benches = only?.length ? BENCHES.filter((b) => only.includes(b.name)) : BENCHES;
  const unknown = (only ?? []).filter((n) => !BENCHES.some((b) => b.name === n));
  if (unknown.length > 0)
    throw new Error(
      `no bench named ${unknown.join(', ')}; the benches are ${BENCHES.map((b) => b.name).join(', ')}`,
    );

  const say = (line: string) => process.stderr.write(`bench: ${line}\n`);
  const deps = defaultProvisionDeps();
  let natscli: Promise<ToolOutcome> | undefined;
  const workDir = await mkdtemp(join(tmpdir(), 'slotflow-bench-'));
  const root = fileURLToPath(new URL('..', import.meta.url));
  const ctx: BenchContext = {
    size,
    root,
    workDir,
    natscli: () => (natscli ??= provisionNatsCli(deps, { build: size !== Size.tiny })),
    say,
  };
  const startedAt = new Date();
  try {
    const machine = await describeMachine(deps, await ctx.natscli());
    const figures: Figure[] = [];
    const runs: Results['benches'] = [];
    for (const bench of benches) {
      say(`== ${bench.name}: ${bench.summary}`);
      const started = performance.now();
      const ran = await runBench(bench, ctx);
      figures.push(...ran.figures);
      runs.push({
        name: bench.name,
        durationMs: Math.round(performance.now() - started),
        ...(ran.error ? { error: ran.error } : {}),
      });
    }
    machine.loadAverage.end = loadavg().map((l) => Math.round(l * 100) / 100);
    const finishedAt = new Date();
    const results = Results.parse({
      format: RESULTS_FORMAT,
      size,
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationMs: finishedAt.getTime() - startedAt.getTime(),
      machine,
      figures: figures
        .map((f, i) => ({ f, i }))
        .sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i)
        .map(({ f }) => f),
      benches: runs,
    });
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, `${JSON.stringify(results, null, 2)}\n`);
    return results;
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  // Stopped from outside (a time limit, Ctrl-C): exit at once, so the 'exit' handlers stop the
  // worker processes (and the servers tied to this process go with it). Without this, the
  // Temporal runtime's own signal handling waits for a graceful worker shutdown that may never end.
  process.once('SIGTERM', () => process.exit(143));
  process.once('SIGINT', () => process.exit(130));
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      tiny: { type: 'boolean', default: false },
      only: { type: 'string' },
      out: { type: 'string', default: fileURLToPath(DEFAULT_RESULTS) },
    },
  });
  if (values.quick && values.tiny) {
    process.stderr.write('bench: choose one of --quick and --tiny\n');
    process.exit(2);
  }
  const size = values.tiny ? Size.tiny : values.quick ? Size.quick : Size.full;
  const results = await runSuite({
    size,
    out: values.out,
    ...(values.only ? { only: values.only.split(',').map((s) => s.trim()) } : {}),
  });
  process.stdout.write(renderTable(results, process.stdout.isTTY));
  process.stderr.write(`bench: results written to ${values.out}\n`);
}
