// The machine a run measured: figures from different machines are not comparable, and a loaded
// machine (other jobs on the same cores) reads slower, so the load average is part of the record.
import { cpus, freemem, loadavg, release, totalmem, type as osType } from 'node:os';
import { z } from 'zod';
import { natsRecipe, provisionTool, temporalRecipe, type ProvisionDeps } from '../stack/index.ts';
import type { ToolOutcome } from './natscli.ts';

export const Machine = z.object({
  cpuModel: z.string(),
  cores: z.number().int().positive(),
  memoryBytes: z.number(),
  freeMemoryBytes: z.number(),
  os: z.string(),
  /** 1, 5 and 15 minute load averages when the run started and ended. */
  loadAverage: z.object({ start: z.array(z.number()), end: z.array(z.number()).optional() }),
  versions: z.record(z.string(), z.string()),
});
export type Machine = z.infer<typeof Machine>;

const quiet = (deps: ProvisionDeps): ProvisionDeps => ({ ...deps, say: () => undefined });

/** Describes this machine and the versions of every tool the figures depend on. */
export async function describeMachine(deps: ProvisionDeps, natscli: ToolOutcome): Promise<Machine> {
  const versions: Record<string, string> = { node: process.version };
  for (const recipe of [natsRecipe, temporalRecipe]) {
    versions[recipe.tool] = await provisionTool(recipe, quiet(deps)).then(
      (t) => t.version,
      (err: unknown) => `unavailable: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  versions['natscli'] = natscli.ok ? natscli.tool.version : 'unavailable';
  for (const [name, file, args] of [
    ['openssl', 'openssl', ['version']],
    ['go', 'go', ['version']],
  ] as const) {
    const ran = await deps.runner.run(file, args, { env: deps.env, timeoutMs: 10_000 });
    versions[name] = ran.ok ? ran.stdout.trim().split('\n')[0]! : `unavailable: ${ran.failure}`;
  }
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryBytes: totalmem(),
    freeMemoryBytes: freemem(),
    os: `${osType()} ${release()} ${process.arch}`,
    loadAverage: { start: loadavg().map((l) => Math.round(l * 100) / 100) },
    versions,
  };
}

/** One line for the table's caption and the README. */
export function machineLine(m: Machine): string {
  const gib = (b: number) => `${(b / 1024 ** 3).toFixed(1)} GiB`;
  const v = m.versions;
  const load = (l: number[] | undefined) => (l ? l.map((x) => x.toFixed(2)).join(' ') : '?');
  return (
    `${m.cpuModel}, ${m.cores} cores, ${gib(m.memoryBytes)} RAM, ${m.os}; ` +
    `node ${v['node']}, ${v['nats-server']}, ${v['temporal']}, natscli ${v['natscli']}, ${v['openssl']}; ` +
    `load average ${load(m.loadAverage.start)} at start, ${load(m.loadAverage.end)} at end`
  );
}
