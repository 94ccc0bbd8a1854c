type Env = Readonly<Record<string, string | undefined>>;

/** How one external command ended; `failure` says why in words when `ok` is false. */
export interface RunResult {
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
  readonly failure?: string;
}

export interface RunOptions {
  /** The complete environment of the child (not merged with ours). */
  readonly env?: Env;
  readonly cwd?: string;
  readonly timeoutMs?: number;
  /** Also copy the child's output to our stderr as it comes (long builds stay visible). */
  readonly echo?: boolean;
}

/** Runs external tools; injected so provisioning can be driven without touching the network. */
export interface Runner {
  run(file: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

/** The real runner, over execa; never rejects, a failed command comes back with `ok: false`. */
export const execaRunner: Runner = {
  async run(file, args, options = {}) {
    // Loaded on first use: execa is a few hundred modules that a node agent idling without
    // health checks or tool-based drivers never needs.
    const { execa } = await import('execa');
    const result = await execa(file, args, {
      reject: false,
      extendEnv: false,
      env: options.env ?? process.env,
      cwd: options.cwd,
      timeout: options.timeoutMs,
      stdin: 'ignore',
      // Output goes to our stderr (fd 2), never stdout, so `--json` output stays clean.
      stdout: options.echo ? ['pipe', 2] : 'pipe',
      stderr: options.echo ? ['pipe', 2] : 'pipe',
    });
    const stdout = String(result.stdout ?? '');
    const stderr = String(result.stderr ?? '');
    if (!result.failed) return { ok: true, stdout, stderr };
    let failure: string;
    if (result.code === 'ENOENT') failure = `${file} was not found`;
    else if (result.code === 'EACCES') failure = `${file} is not executable`;
    else if (result.timedOut) failure = `${file} did not finish within ${options.timeoutMs} ms`;
    else if (result.signal) failure = `${file} was killed by ${result.signal}`;
    else if (result.exitCode !== undefined) failure = `${file} exited with code ${result.exitCode}`;
    else failure = result.shortMessage ?? `${file} failed`;
    const tail = lastLines(stderr || stdout, 5);
    return { ok: false, stdout, stderr, failure: tail ? `${failure}: ${tail}` : failure };
  },
};

/** The last `count` non-empty lines of text, joined with " | " for a one-line message. */
export function lastLines(text: string, count: number): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-count)
    .join(' | ');
}
