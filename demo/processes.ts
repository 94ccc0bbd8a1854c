import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The `slotflow` entry point, so demo processes run exactly what an operator would. */
export const SLOTFLOW_BIN = fileURLToPath(new URL('../bin/slotflow', import.meta.url));

/** Child processes the demo started; all of them stop with the demo, whatever way it ends. */
export interface ProcessGroup {
  /** Starts `slotflow <args>` with the environment, its output appended to `logFile`. */
  start(name: string, args: string[], env: Record<string, string>, logFile: string): ChildProcess;
  /** SIGTERM to every child, SIGKILL after the grace period; resolves when all have exited. */
  stopAll(graceMs?: number): Promise<void>;
  readonly size: number;
}

/** A group of child processes that are killed on process exit too (no leftovers). */
export function createProcessGroup(): ProcessGroup {
  const children = new Map<string, ChildProcess>();
  const killAll = () => {
    for (const child of children.values()) child.kill('SIGKILL');
  };
  process.on('exit', killAll);
  return {
    get size() {
      return children.size;
    },
    start(name, args, env, logFile) {
      const out = createWriteStream(logFile, { flags: 'a' });
      const child = spawn(SLOTFLOW_BIN, args, {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout?.pipe(out);
      child.stderr?.pipe(out);
      children.set(name, child);
      child.once('exit', () => children.delete(name));
      return child;
    },
    async stopAll(graceMs = 10_000) {
      const running = [...children.values()].filter((c) => c.exitCode === null && c.signalCode === null);
      for (const child of running) child.kill('SIGTERM');
      const timer = setTimeout(killAll, graceMs);
      await Promise.all(
        running.map((c) => (c.exitCode === null && c.signalCode === null ? once(c, 'exit') : undefined)),
      );
      clearTimeout(timer);
      process.off('exit', killAll);
    },
  };
}
