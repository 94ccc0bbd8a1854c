// Real `bin/slotflow agent` processes for tests. Each agent is its own process group (the
// supervisor and its system child), tethered to the test process: when the test process dies
// for any reason, a tiny sh wrapper kills the group.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const SLOTFLOW = fileURLToPath(new URL('../../bin/slotflow', import.meta.url));

// fd 3 is a pipe from the test process; EOF on it means the test process is gone.
const TETHER = `
log=$1; shift
exec 3<&0 0</dev/null
setsid "$@" >>"$log" 2>&1 3<&- &
agent=$!
echo "$agent"
exec 1>/dev/null 2>/dev/null
# A signal to the test's process group (a runner stopping the file) ends the machine too; the
# watcher ignores such signals so that the pipe's EOF still ends it if the wrapper is gone.
trap 'kill -KILL -"$agent" 2>/dev/null; exit 143' TERM INT HUP
( trap '' TERM INT HUP; while read -r _ <&3; do :; done; kill -KILL -"$agent" 2>/dev/null ) &
watcher=$!
exec 3<&-
wait "$agent"
code=$?
kill "$watcher" 2>/dev/null
exit $code
`;

interface ProcStat {
  readonly pid: number;
  readonly pgrp: number;
  readonly state: string;
}

async function procStats(): Promise<ProcStat[]> {
  const out: ProcStat[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ pid: Number(name), state: rest[0]!, pgrp: Number(rest[2]) });
    } catch {
      // gone while we looked
    }
  }
  return out;
}

/** Live (non-zombie) processes of a process group. */
export async function groupMembers(pgid: number): Promise<number[]> {
  return (await procStats())
    .filter((p) => p.pgrp === pgid && p.state !== 'Z' && p.state !== 'X')
    .map((p) => p.pid);
}

/** One agent machine: supervisor + system child in their own process group. */
export class AgentProcess {
  readonly pid: number;
  readonly exited: Promise<number | null>;
  readonly #wrapper: ChildProcess;

  private constructor(pid: number, wrapper: ChildProcess, exited: Promise<number | null>) {
    this.pid = pid;
    this.#wrapper = wrapper;
    this.exited = exited;
  }

  /** Starts `bin/slotflow agent <args>` with output appended to logFile. */
  static async start(
    args: readonly string[],
    env: NodeJS.ProcessEnv,
    logFile: string,
  ): Promise<AgentProcess> {
    const wrapper = spawn(
      'sh',
      ['-c', TETHER, 'slotflow-agent-tether', logFile, SLOTFLOW, 'agent', ...args],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
        env,
      },
    );
    const exited = new Promise<number | null>((resolve) => wrapper.once('exit', (code) => resolve(code)));
    let text = '';
    for await (const chunk of wrapper.stdout!) {
      text += String(chunk);
      if (text.includes('\n')) break;
    }
    const pid = Number(text.trim());
    if (!Number.isInteger(pid) || pid <= 0)
      throw new Error(`the agent tether printed '${text}' instead of a pid`);
    wrapper.unref();
    wrapper.stdout!.destroy();
    (wrapper.stdin as unknown as { unref(): void }).unref();
    return new AgentProcess(pid, wrapper, exited);
  }

  /** Power loss: SIGKILL to the whole machine; resolves once every process of it is gone. */
  async powerOff(): Promise<void> {
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
    await this.#waitGone(10_000);
  }

  /** Agent crash without a reboot: SIGKILL to the system child only (the supervisor restarts it). */
  async crashSystem(): Promise<boolean> {
    const child = (await groupMembers(this.pid)).find((pid) => pid !== this.pid);
    if (child === undefined) return false;
    try {
      process.kill(child, 'SIGKILL');
      return true;
    } catch {
      return false;
    }
  }

  /** Orderly stop (SIGTERM to the supervisor); SIGKILL after the grace time. */
  async stop(graceMs = 15_000): Promise<void> {
    try {
      process.kill(this.pid, 'SIGTERM');
    } catch {
      return;
    }
    const done = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) await this.powerOff();
    await this.#waitGone(10_000);
  }

  async #waitGone(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await groupMembers(this.pid)).length > 0) {
      if (Date.now() > deadline)
        throw new Error(`agent process group ${this.pid} still alive after ${timeoutMs} ms`);
      await sleep(20);
    }
    this.#wrapper.stdin?.destroy();
  }
}
