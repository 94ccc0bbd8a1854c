// Benches owned by other parts, run as their own processes: the node agent's slot writes and
// RSS (`bench/agent-slot-write.ts`) and the P2P chunk exchange (`bench/p2p-chunks.ts`).
//
// Contract: `node bench/<script> --json [--quick]` prints one JSON document on stdout,
// `{ "figures": Figure[] }` (bench/figure.ts; build them with measured()/notMeasured()), using
// the figure ids listed below. Anything else it prints goes to stderr. Until a script exists, or
// when its output does not follow the contract, its figures say so instead of failing the run.
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { execaRunner, type Runner } from '../runtime/runner.ts';
import { Figure, GoalKind, notMeasured, type FigureSpec } from './figure.ts';
import { bySize, type BenchModule } from './suite.ts';

const report = { kind: GoalKind.report, text: 'report' } as const;

/** The figures the agent's bench reports. */
export const agentFigures: readonly FigureSpec[] = [
  {
    id: 'slot-write-throughput',
    title: 'slot write throughput, verification on',
    comparedWith: 'dd bs=4M oflag=direct to the same target',
    goal: { kind: GoalKind.ratioAtLeast, target: 0.9, text: '≥ 0.9' },
  },
  { id: 'agent-rss-idle', title: 'agent RSS, idle', comparedWith: 'a bare Node process', goal: report },
  {
    id: 'agent-rss-write',
    title: 'agent RSS, during a slot write',
    comparedWith: 'a bare Node process',
    goal: report,
  },
];

/** The figures of the light agent's footprint bench (absolute bounds, so each is its own baseline). */
export const agentFootprintFigures: readonly FigureSpec[] = [
  {
    id: 'agent-rss-idle-light',
    title: 'agent RSS idle, without P2P',
    comparedWith: 'the 64 MiB bound',
    goal: { kind: GoalKind.ratioAtMost, target: 1, text: '≤ 64 MiB' },
  },
  {
    id: 'agent-rss-idle-p2p',
    title: 'agent RSS idle, with P2P',
    comparedWith: 'the 120 MiB bound',
    goal: { kind: GoalKind.ratioAtMost, target: 1, text: '≤ 120 MiB' },
  },
  {
    id: 'agent-rss-write-peak',
    title: 'agent peak RSS during a 256 MiB slot write',
    comparedWith: 'the same agent idle',
    goal: { kind: GoalKind.ratioAtMost, target: 1.5, text: '≤ 1.5 × idle' },
  },
  {
    id: 'agent-startup',
    title: 'agent start-up to NodeRegistered',
    comparedWith: 'the 1 s bound',
    goal: { kind: GoalKind.ratioAtMost, target: 1, text: '≤ 1 s' },
  },
];

/** What a gossiped command's p99 is shown against: the goal commands over NATS are held to. */
export const GOSSIP_GOAL_MS = 200;

/** The figures the P2P bench reports. */
export const p2pFigures: readonly FigureSpec[] = [
  {
    id: 'p2p-origin-egress',
    title: 'origin egress with P2P, 16 agents',
    comparedWith: 'image size',
    goal: { kind: GoalKind.ratioAtMost, target: 1.1, text: '≤ 1.1 ×' },
  },
  {
    id: 'p2p-chunk-transfer',
    title: 'chunk transfer over libp2p',
    comparedWith: 'raw Node loopback TCP',
    goal: { kind: GoalKind.report, target: 0.5, text: 'report (goal ≥ 0.5)' },
  },
  {
    id: 'p2p-gossip-p99',
    title: 'gossiped signed command reaches all 32 peers, p99',
    comparedWith: `the ${GOSSIP_GOAL_MS} ms command-latency goal over NATS`,
    goal: report,
  },
];

const Output = z.object({ figures: z.array(Figure) });

/** Finds the JSON document in a script's stdout (the last line that parses, or all of it). */
export function parseScriptOutput(stdout: string): z.infer<typeof Output> {
  const candidates = [stdout, ...stdout.trim().split('\n').reverse()];
  let lastError = 'no output';
  for (const text of candidates) {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      continue;
    }
    const parsed = Output.safeParse(raw);
    if (parsed.success) return parsed.data;
    lastError = `JSON without the expected { figures: Figure[] } shape (${parsed.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ')})`;
  }
  throw new Error(lastError);
}

/** A module that runs `bench/<script>` and reads its figures; promised ones it lacks are marked. */
export function externalBench({
  name,
  script,
  owner,
  figures,
  runner = execaRunner,
}: {
  name: string;
  script: string;
  owner: string;
  figures: readonly FigureSpec[];
  runner?: Runner;
}): BenchModule {
  return {
    name,
    summary: `${script} (${owner}), run as its own process`,
    figures: () => figures,
    async run(ctx) {
      const path = join(ctx.root, 'bench', script);
      const present = await access(path).then(
        () => true,
        () => false,
      );
      if (!present) {
        return figures.map((f) =>
          notMeasured(f, 'unavailable', `not available yet: bench/${script} (${owner}) is not in the tree`),
        );
      }
      if (ctx.size === 'tiny') {
        return figures.map((f) =>
          notMeasured(f, 'unavailable', `tiny runs skip bench/${script}; run --quick or the full suite`),
        );
      }
      ctx.say(`${name}: node bench/${script}`);
      const args = [
        '--disable-warning=ExperimentalWarning',
        path,
        '--json',
        ...bySize(ctx.size, { tiny: [], quick: ['--quick'], full: [] }),
      ];
      const ran = await runner.run(process.execPath, args, { cwd: ctx.root, timeoutMs: 30 * 60_000 });
      let reported: Figure[];
      try {
        if (!ran.ok) {
          // The stack's last lines (in ran.failure) rarely say what went wrong; its error line does.
          const cause = ran.stderr.split('\n').find((l) => /\b\w*Error\b|error:/.test(l));
          throw new Error(`it failed${cause ? ` with ${cause.trim()}` : ''}: ${ran.failure}`);
        }
        reported = parseScriptOutput(ran.stdout).figures;
      } catch (err) {
        const why = `bench/${script} gave no figures in the runner's format: ${(err as Error).message}`;
        return figures.map((f) => notMeasured(f, 'failed', why, { stdoutTail: ran.stdout.slice(-2_000) }));
      }
      const promised = new Set(figures.map((f) => f.id));
      // Promised figures in table order, then whatever else the script reports.
      return [
        ...figures.map(
          (f) =>
            reported.find((r) => r.id === f.id) ??
            notMeasured(f, 'failed', `bench/${script} did not report ${f.id}`),
        ),
        ...reported.filter((r) => !promised.has(r.id)),
      ];
    },
  };
}

export const agentBench = externalBench({
  name: 'agent-slot-write',
  script: 'agent-slot-write.ts',
  owner: 'node agent',
  figures: agentFigures,
});

export const agentFootprintBench = externalBench({
  name: 'agent-footprint',
  script: 'agent-footprint.ts',
  owner: 'node agent',
  figures: agentFootprintFigures,
});

export const p2pBench = externalBench({
  name: 'p2p-chunks',
  script: 'p2p-chunks.ts',
  owner: 'P2P',
  figures: p2pFigures,
});
