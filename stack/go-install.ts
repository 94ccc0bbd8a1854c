import { mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Runner } from '../runtime/runner.ts';

type Env = Readonly<Record<string, string | undefined>>;

export interface GoInstallRequest {
  /** Go package path of the main package, e.g. `github.com/nats-io/nats-server/v2`. */
  readonly pkg: string;
  /** Pinned module version, e.g. `v2.15.2`. */
  readonly version: string;
  /** Name of the binary `go install` produces. */
  readonly binary: string;
  /** Directory the finished binary is moved into. */
  readonly binDir: string;
  readonly env: Env;
  readonly runner: Runner;
  readonly say: (line: string) => void;
}

export type GoInstallResult = { ok: true; path: string } | { ok: false; reason: string };

// Building the Temporal CLI takes minutes on a cold module cache; past this it is stuck.
const BUILD_TIMEOUT_MS = 45 * 60_000;
// Build directories left by an interrupted run are removed once they are clearly abandoned.
const STALE_BUILD_MS = 6 * 60 * 60_000;

/**
 * `go install pkg@version` into a private temporary GOBIN inside binDir, then an atomic rename
 * to binDir/binary: an interrupted build never leaves a half-written binary where slotflow
 * would pick it up.
 */
export async function goInstall(req: GoInstallRequest): Promise<GoInstallResult> {
  const { runner, env, say } = req;
  const go = await runner.run('go', ['version'], { env, timeoutMs: 30_000 });
  if (!go.ok) return { ok: false, reason: `the Go toolchain is not usable (${go.failure})` };
  await mkdir(req.binDir, { recursive: true });
  await removeStaleBuilds(req.binDir, req.binary, say);
  const gobin = await mkdtemp(join(req.binDir, `.build-${req.binary}-`));
  try {
    const target = `${req.pkg}@${req.version}`;
    say(`building ${target} with ${go.stdout.trim()} (GOBIN=${gobin}); the first build takes a few minutes`);
    const built = await runner.run('go', ['install', target], {
      env: { ...env, GOBIN: gobin },
      cwd: gobin,
      timeoutMs: BUILD_TIMEOUT_MS,
      echo: true,
    });
    if (!built.ok) return { ok: false, reason: `go install ${target} failed (${built.failure})` };
    const finalPath = join(req.binDir, req.binary);
    await rename(join(gobin, req.binary), finalPath);
    say(`installed ${finalPath}`);
    return { ok: true, path: finalPath };
  } finally {
    await rm(gobin, { recursive: true, force: true });
  }
}

async function removeStaleBuilds(binDir: string, binary: string, say: (line: string) => void): Promise<void> {
  const prefix = `.build-${binary}-`;
  for (const entry of await readdir(binDir)) {
    if (!entry.startsWith(prefix)) continue;
    const dir = join(binDir, entry);
    const info = await stat(dir).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > STALE_BUILD_MS) {
      say(`removing ${dir}, left by an interrupted build`);
      await rm(dir, { recursive: true, force: true });
    }
  }
}
