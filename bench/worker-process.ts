// `slotflow worker` as its own process, as production runs it: the rollout benches measure the
// orchestrator without the simulated fleet sharing its event loop, and its RSS on its own.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface WorkerProcess {
  readonly pid: number;
  /** The last lines it logged (for error messages). */
  tail(): string;
  /** SIGTERM (graceful: running tasks finish), SIGKILL after 30 s. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Starts `cli/main.ts worker` with the given connection env; resolves once it polls. */
export async function startWorkerProcess(root: string, env: Record<string, string>): Promise<WorkerProcess> {
  const child = spawn(
    process.execPath,
    ['--disable-warning=ExperimentalWarning', join(root, 'cli/main.ts'), 'worker'],
    { env: { ...process.env, ...env, SLOTFLOW_LOG_LEVEL: 'info' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  live.add(child);
  const lines: string[] = [];
  const tail = () => lines.slice(-15).join('\n');
  let started: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (started = resolve));
  createInterface({ input: child.stderr! }).on('line', (line) => {
    lines.push(line);
    if (lines.length > 200) lines.shift();
    if (line.includes('"msg":"worker started"')) started();
  });
  const exited = once(child, 'exit').then(([code, signal]) => {
    live.delete(child);
    return { code: code as number | null, signal: signal as NodeJS.Signals | null };
  });
  const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 120_000).unref());
  const first = await Promise.race([ready.then(() => 'ready' as const), exited, timeout]);
  if (first !== 'ready') {
    child.kill('SIGKILL');
    const why =
      first === 'timeout'
        ? 'did not report "worker started" within 120 s'
        : `exited (${JSON.stringify(first)})`;
    throw new Error(`slotflow worker ${why}; its last lines:\n${tail()}`);
  }
  return {
    pid: child.pid!,
    tail,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(kill);
    },
  };
}
