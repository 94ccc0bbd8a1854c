// `slotflow worker` as a child process the campaign can SIGKILL and start again.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const SLOTFLOW = fileURLToPath(new URL('../../bin/slotflow', import.meta.url));
// Bundling the workflows takes a while on a loaded two-core host.
const READY_MS = 180_000;

/** One worker process; `ready` resolves when it logged that it started (or rejects if it exits first). */
export interface WorkerProcess {
  readonly pid: number;
  readonly ready: Promise<number>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL, then waits for the exit. */
  kill(): Promise<void>;
  /** The last lines it wrote to stderr (for a report when it died on its own). */
  tail(): string;
}

/** Starts `slotflow worker` with the control plane's environment. */
export function spawnWorker(env: Record<string, string>): WorkerProcess {
  const started = Date.now();
  const child: ChildProcess = spawn(SLOTFLOW, ['worker'], {
    env: { ...process.env, ...env, SLOTFLOW_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const ready = new Promise<number>((resolve, reject) => {
    // Its log (pino, on stderr) says when it polls the task queues.
    child.stderr?.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-8192);
      if (err.includes('"worker started"')) resolve(Date.now() - started);
    });
    child.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4096)));
    void exited.then(({ code, signal }) =>
      reject(new Error(`worker exited (${code ?? signal}) before it started: ${err.slice(-1500)}${out}`)),
    );
    setTimeout(
      () => reject(new Error(`worker not started after ${READY_MS} ms: ${err.slice(-1500)}`)),
      READY_MS,
    ).unref();
  });
  ready.catch(() => undefined);
  return {
    pid: child.pid ?? -1,
    ready,
    exited,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    tail: () => err.slice(-1500),
  };
}
