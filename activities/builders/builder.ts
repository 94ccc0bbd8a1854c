import type { Runner } from '../../runtime/runner.ts';

/** What a builder is asked to make. */
export interface BuildInput {
  /** rootfs directory or Containerfile path. */
  readonly source: string;
  readonly version: string;
  /** Directory where the builder writes its output file. */
  readonly outDir: string;
  readonly format: 'ext4' | 'squashfs';
  /** What the filesystem UUID and hash seed derive from (default: the version), so equal sources give equal bytes. */
  readonly seed?: string;
}

/** A slot image on disk, ready to be hashed and published. */
export interface BuildOutput {
  readonly path: string;
  readonly format: 'ext4' | 'squashfs';
  /** Tool and version that made it, e.g. `mke2fs 1.47.0`. */
  readonly builder: string;
  /** A container image the build left in local storage (Containerfile builds), which can be pushed. */
  readonly containerImage?: string;
}

/** One way to turn sources into a slot image; every builder passes the same compliance suite. */
export interface ImageBuilder {
  readonly name: string;
  build(input: BuildInput): Promise<BuildOutput>;
}

/** A builder that cannot run here, or whose tool failed; says what to install or fix. */
export class BuildError extends Error {
  override name = 'BuildError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Runs a build tool; its output on success, a BuildError naming the tool and why on failure. */
export async function runTool(
  runner: Runner,
  file: string,
  args: readonly string[],
  env?: NodeJS.ProcessEnv,
): Promise<string> {
  const result = await runner.run(file, args, { timeoutMs: 1_800_000, ...(env ? { env } : {}) });
  if (!result.ok) throw new BuildError(`${file} ${args[0]} failed: ${result.failure}`);
  return result.stdout.trim();
}

/** Side effects a builder needs, injected so tests can record commands. */
export interface BuilderDeps {
  readonly runner: Runner;
}
