// The NATS CLI (natscli), whose `nats bench` is the peer our JetStream figures are compared with.
// It is provisioned like the stack's own tools (stack/binaries.ts): `$NATS_CLI`, else the cached
// build in `$SLOTFLOW_CACHE/bin`, else `go install` of the pinned version.
import { mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  cacheBinDir,
  execaRunner,
  provisionTool,
  type ProvisionDeps,
  type ResolvedTool,
  type ToolRecipe,
} from '../stack/index.ts';
import type { Runner } from '../runtime/runner.ts';

/** natscli pinned; `nats bench js pub async` and `nats bench kv put` have these flags since v0.2. */
export const natscliRecipe: ToolRecipe = {
  tool: 'nats',
  label: 'NATS CLI (natscli)',
  envVar: 'NATS_CLI',
  binary: 'nats',
  pkg: 'github.com/nats-io/natscli/nats',
  version: 'v0.4.0',
  releases: 'https://github.com/nats-io/natscli/releases',
};

/** A tool that is ready, or the reason it is not (a figure then says why instead of crashing). */
export type ToolOutcome = { ok: true; tool: ResolvedTool } | { ok: false; reason: string };

// Building natscli takes about a minute with a warm module cache, several on a cold one.
const BUILD_TIMEOUT_MS = 30 * 60_000;

/**
 * Locates or builds natscli. `go install pkg@version` also asks the module proxy for the
 * module's version list (to print deprecation notices) and fails when a proxy refuses that list;
 * a build inside a throwaway module does not ask, so it is the fallback. `build: false` (tiny
 * runs) only takes what is already there.
 */
export async function provisionNatsCli(
  deps: ProvisionDeps,
  { build }: { build: boolean },
): Promise<ToolOutcome> {
  const runner: Runner = build ? deps.runner : refuseGo(deps.runner);
  try {
    return { ok: true, tool: await provisionTool(natscliRecipe, { ...deps, runner }) };
  } catch (err) {
    if (!build) {
      return {
        ok: false,
        reason:
          'natscli is not provisioned and tiny runs do not build it; run `npm run bench -- --quick` once or set NATS_CLI',
      };
    }
    if (deps.env[natscliRecipe.envVar]) return { ok: false, reason: (err as Error).message };
    deps.say(`${natscliRecipe.label}: go install failed; building inside a throwaway module instead`);
    const built = await buildInModule(natscliRecipe, deps);
    if (!built.ok) return { ok: false, reason: `${(err as Error).message}; then ${built.reason}` };
    try {
      return { ok: true, tool: await provisionTool(natscliRecipe, deps) };
    } catch (again) {
      return { ok: false, reason: (again as Error).message };
    }
  }
}

/** A runner that runs everything but the Go toolchain (so provisioning never builds). */
function refuseGo(runner: Runner): Runner {
  return {
    run: (file, args, options) =>
      file === 'go'
        ? Promise.resolve({ ok: false, stdout: '', stderr: '', failure: 'building is off for this run' })
        : runner.run(file, args, options),
  };
}

/**
 * `go mod init` + `go get pkg@version` + `go build` in a temporary directory inside the cache,
 * then an atomic rename to `$SLOTFLOW_CACHE/bin/<binary>` (the same guarantees as goInstall).
 */
async function buildInModule(
  recipe: ToolRecipe,
  deps: ProvisionDeps,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const binDir = cacheBinDir(deps.env);
  await mkdir(binDir, { recursive: true });
  const dir = await mkdtemp(join(binDir, `.build-${recipe.binary}-`));
  try {
    const target = `${recipe.pkg}@${recipe.version}`;
    const steps: [string, string[]][] = [
      ['go', ['mod', 'init', 'slotflow.local/bench-tools']],
      ['go', ['get', target]],
      ['go', ['build', '-o', join(dir, recipe.binary), recipe.pkg]],
    ];
    for (const [file, args] of steps) {
      const ran = await deps.runner.run(file, args, {
        env: deps.env,
        cwd: dir,
        timeoutMs: BUILD_TIMEOUT_MS,
        echo: true,
      });
      if (!ran.ok) return { ok: false, reason: `${file} ${args.join(' ')} failed (${ran.failure})` };
    }
    await rename(join(dir, recipe.binary), join(binDir, recipe.binary));
    deps.say(`installed ${join(binDir, recipe.binary)} (${target})`);
    return { ok: true };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One client's line of `nats bench --csv`. */
export interface NatsBenchRow {
  clientId: string;
  msgs: number;
  msgsPerSec: number;
  bytesPerSec: number;
  durationSecs: number;
}

/**
 * Parses the CSV `nats bench … --csv FILE` writes: a `#RunID,ClientID,MsgCount,…` header, then
 * one row per client. Throws when the header lacks a column we need (a natscli that changed it).
 */
export function parseNatsBenchCsv(text: string): NatsBenchRow[] {
  const lines = text.split('\n').filter((l) => l.trim());
  const header = (lines[0] ?? '').replace(/^#/, '').split(',');
  const col = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`nats bench CSV has no ${name} column (header: ${header.join(',')})`);
    return i;
  };
  const [client, count, rate, bytes, duration] = [
    col('ClientID'),
    col('MsgCount'),
    col('MsgsPerSec'),
    col('BytesPerSec'),
    col('DurationSecs'),
  ];
  return lines.slice(1).map((line) => {
    const cells = line.split(',');
    return {
      clientId: cells[client] ?? '',
      msgs: Number(cells[count]),
      msgsPerSec: Number(cells[rate]),
      bytesPerSec: Number(cells[bytes]),
      durationSecs: Number(cells[duration]),
    };
  });
}

/** Runs `nats bench <args> --csv` against a server and returns the summed message rate. */
export async function runNatsBench(
  nats: ResolvedTool,
  server: string,
  args: readonly string[],
  csvFile: string,
  runner: Runner = execaRunner,
): Promise<{ msgsPerSec: number; bytesPerSec: number; rows: NatsBenchRow[]; command: string }> {
  const full = ['--server', server, ...args, '--no-progress', '--csv', csvFile];
  const ran = await runner.run(nats.path, full, { timeoutMs: 10 * 60_000 });
  const command = `nats ${full.join(' ')}`;
  if (!ran.ok) throw new Error(`${command} failed: ${ran.failure}`);
  const rows = parseNatsBenchCsv(await readFile(csvFile, 'utf8'));
  if (rows.length === 0) throw new Error(`${command} wrote no result rows to ${csvFile}`);
  return {
    msgsPerSec: rows.reduce((s, r) => s + r.msgsPerSec, 0),
    bytesPerSec: rows.reduce((s, r) => s + r.bytesPerSec, 0),
    rows,
    command,
  };
}
