import { access, constants, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ProvisionError } from './errors.ts';
import { goInstall } from './go-install.ts';
import { cacheBinDir } from './paths.ts';
import { execaRunner, type Runner } from '../runtime/runner.ts';

type Env = Readonly<Record<string, string | undefined>>;

/** Where a tool came from: an explicit env var, the cache, a fresh build, or the OS package. */
export const ToolSource = {
  env: 'env',
  cache: 'cache',
  built: 'built',
  system: 'system',
} as const;
export type ToolSource = (typeof ToolSource)[keyof typeof ToolSource];

/** A binary the stack runs, located and checked to execute. */
export interface ResolvedTool {
  readonly tool: string;
  readonly path: string;
  /** First line of `<binary> --version`. */
  readonly version: string;
  readonly source: ToolSource;
}

/** How to find, build or fall back for one tool. */
export interface ToolRecipe {
  readonly tool: string;
  readonly label: string;
  readonly envVar: string;
  readonly binary: string;
  readonly pkg: string;
  readonly version: string;
  readonly releases: string;
  /** An OS-packaged binary to use, with a warning, when building fails. */
  readonly systemFallback?: string;
}

// Later CLI tags carry a replace directive in go.mod that `go install pkg@version` refuses.
export const temporalRecipe: ToolRecipe = {
  tool: 'temporal',
  label: 'Temporal CLI',
  envVar: 'TEMPORAL_CLI',
  binary: 'temporal',
  pkg: 'github.com/temporalio/cli/cmd/temporal',
  version: 'v1.5.1',
  releases: 'https://github.com/temporalio/cli/releases',
};

export const natsRecipe: ToolRecipe = {
  tool: 'nats-server',
  label: 'nats-server',
  envVar: 'NATS_SERVER',
  binary: 'nats-server',
  pkg: 'github.com/nats-io/nats-server/v2',
  version: 'v2.15.2',
  releases: 'https://github.com/nats-io/nats-server/releases',
  // Debian's package (2.9.x) predates some JetStream features but runs the stack.
  systemFallback: '/usr/sbin/nats-server',
};

export interface ProvisionDeps {
  readonly env: Env;
  readonly runner: Runner;
  /** Receives every action taken, one line each (printed as `slotflow setup: …`). */
  readonly say: (line: string) => void;
}

/** Default deps: the process environment, execa, and `slotflow setup: …` lines on stderr. */
export function defaultProvisionDeps(): ProvisionDeps {
  return {
    env: process.env,
    runner: execaRunner,
    say: (line) => process.stderr.write(`slotflow setup: ${line}\n`),
  };
}

/**
 * An absolute path for a command given as a path or a bare name looked up on PATH: the stack
 * records it and later matches it against /proc/<pid>/cmdline, from any working directory.
 */
async function absoluteCommand(command: string, env: Env): Promise<string> {
  if (command.includes('/')) return resolve(command);
  for (const dir of (env['PATH'] ?? '').split(':').filter(Boolean)) {
    const candidate = join(dir, command);
    if (
      await access(candidate, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return resolve(candidate);
  }
  return resolve(command);
}

type Probe = { ok: true; version: string } | { ok: false; reason: string };

/** Checks that path is an executable file that answers `--version`. */
async function probe(path: string, deps: ProvisionDeps): Promise<Probe> {
  const info = await stat(path).catch(() => undefined);
  if (!info) return { ok: false, reason: `${path} does not exist` };
  if (!info.isFile()) return { ok: false, reason: `${path} is not a file` };
  const executable = await access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
  if (!executable) return { ok: false, reason: `${path} is not executable (chmod +x it)` };
  const ran = await deps.runner.run(path, ['--version'], { env: deps.env, timeoutMs: 30_000 });
  if (!ran.ok) return { ok: false, reason: `${path} --version failed (${ran.failure})` };
  const version = (ran.stdout || ran.stderr).trim().split('\n')[0] ?? '';
  return { ok: true, version };
}

/**
 * Locates one tool: `$<envVar>` when set (and it must work), else the cached build, else
 * `go install` of the pinned version into the cache, else the OS fallback with a warning.
 * Idempotent: once cached, later calls only check the binary runs.
 */
export async function provisionTool(recipe: ToolRecipe, deps: ProvisionDeps): Promise<ResolvedTool> {
  const { say, env } = deps;
  const fromEnv = env[recipe.envVar] ? await absoluteCommand(env[recipe.envVar]!, env) : undefined;
  if (fromEnv) {
    const checked = await probe(fromEnv, deps);
    if (!checked.ok) {
      throw new ProvisionError(
        `${recipe.envVar}=${fromEnv} is not a usable ${recipe.label}: ${checked.reason}; ` +
          `point ${recipe.envVar} at a working ${recipe.binary} binary, or unset it to let slotflow build one`,
      );
    }
    say(`${recipe.label}: using ${fromEnv} from ${recipe.envVar} (${checked.version})`);
    return { tool: recipe.tool, path: fromEnv, version: checked.version, source: ToolSource.env };
  }

  const binDir = cacheBinDir(env);
  const cached = join(binDir, recipe.binary);
  const inCache = await probe(cached, deps);
  if (inCache.ok) {
    say(`${recipe.label}: using cached ${cached} (${inCache.version})`);
    return { tool: recipe.tool, path: cached, version: inCache.version, source: ToolSource.cache };
  }
  say(`${recipe.label}: no usable binary in the cache (${inCache.reason}); building ${recipe.version}`);

  const built = await goInstall({ ...recipe, binDir, env, runner: deps.runner, say });
  let reason: string;
  if (built.ok) {
    const checked = await probe(built.path, deps);
    if (checked.ok) {
      return { tool: recipe.tool, path: built.path, version: checked.version, source: ToolSource.built };
    }
    reason = `the freshly built binary does not run (${checked.reason})`;
  } else {
    reason = built.reason;
  }

  if (recipe.systemFallback) {
    const system = await probe(recipe.systemFallback, deps);
    if (system.ok) {
      say(
        `warning: ${recipe.label}: ${reason}; falling back to ${recipe.systemFallback} (${system.version}), ` +
          `older than the pinned ${recipe.version}`,
      );
      return {
        tool: recipe.tool,
        path: recipe.systemFallback,
        version: system.version,
        source: ToolSource.system,
      };
    }
  }
  throw new ProvisionError(
    `cannot provide the ${recipe.label}: ${reason}. Install Go (https://go.dev/dl/) so slotflow can build ` +
      `${recipe.pkg}@${recipe.version}, or download a release (${recipe.releases}) and ` +
      `set ${recipe.envVar}=/path/to/${recipe.binary}`,
  );
}

/** Both tools the local stack runs. */
export interface StackBinaries {
  readonly temporal: ResolvedTool;
  readonly nats: ResolvedTool;
}

/**
 * Provisions the Temporal CLI, then nats-server (one at a time, so build output stays readable);
 * tries both before failing so one run reports every missing tool in one ProvisionError.
 */
export async function provisionBinaries(
  deps: ProvisionDeps = defaultProvisionDeps(),
): Promise<StackBinaries> {
  const failures: Error[] = [];
  const attempt = (recipe: ToolRecipe) =>
    provisionTool(recipe, deps).catch((err: unknown) => {
      failures.push(err instanceof Error ? err : new Error(String(err)));
      return undefined;
    });
  const temporal = await attempt(temporalRecipe);
  const nats = await attempt(natsRecipe);
  if (temporal && nats) return { temporal, nats };
  throw new ProvisionError(failures.map((e) => e.message).join('\n'), { cause: failures[0] });
}
