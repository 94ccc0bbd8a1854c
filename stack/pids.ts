import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** True when pid exists and is not a zombie (a dead child its parent has not reaped yet). */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name in parentheses may itself contain spaces or ')'; the state follows the last ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** The argv of a running process, or undefined when it is gone. */
export async function commandLine(pid: number): Promise<string[] | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((part, i, all) => part !== '' || i < all.length - 1);
  } catch {
    return undefined;
  }
}

/**
 * True when pid is alive and still runs `binary` (its argv[0]). Pids are recycled, so a
 * recorded pid alone is not proof: never signal a process without this check.
 */
export async function isRunningBinary(pid: number, binary: string): Promise<boolean> {
  if (!(await isAlive(pid))) return false;
  const argv = await commandLine(pid);
  return argv?.[0] === binary;
}

/** Polls until pid is gone or timeoutMs passes; resolves true when it is gone. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (await isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

/** How a stop request ended. */
export const StopOutcome = {
  terminated: 'terminated',
  killed: 'killed',
  notRunning: 'not-running',
} as const;
export type StopOutcome = (typeof StopOutcome)[keyof typeof StopOutcome];

/** Sends SIGTERM, waits up to graceMs, then SIGKILL; resolves once the process is gone. */
export async function terminate(pid: number, graceMs: number): Promise<StopOutcome> {
  if (!signal(pid, 'SIGTERM')) return StopOutcome.notRunning;
  if (await waitForExit(pid, graceMs)) return StopOutcome.terminated;
  signal(pid, 'SIGKILL');
  await waitForExit(pid, 10_000);
  return StopOutcome.killed;
}

/** Sends a signal; false when the process no longer exists. */
export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}
