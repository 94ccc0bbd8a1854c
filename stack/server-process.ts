import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { PortInUseError, ServerStartError } from './errors.ts';
import { signal, terminate } from './pids.ts';
import { assertPortsFree, type PortClaim } from './ports.ts';

/** Everything needed to launch one server and know when it is ready. */
export interface ServerSpec {
  /** Short name for logs and errors, e.g. "Temporal dev server". */
  readonly name: string;
  readonly binary: string;
  readonly args: readonly string[];
  /** The server's stdout and stderr are appended here. */
  readonly logFile: string;
  /** Checked free before launch, so a taken port is a clear error and not a dead server. */
  readonly ports: readonly PortClaim[];
  /** Resolves when the server serves; rejects saying why not (yet). Must bound its own time. */
  readonly probe: () => Promise<void>;
  readonly startTimeoutMs: number;
}

/**
 * detached: own session, outlives the launching process (the `stack up` CLI).
 * tethered: dies with the launching process (tests), even when that one is SIGKILLed.
 */
export const LaunchMode = { detached: 'detached', tethered: 'tethered' } as const;
export type LaunchMode = (typeof LaunchMode)[keyof typeof LaunchMode];

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A launched server process. */
export interface LaunchedServer {
  /** The server's own pid (not a wrapper's). */
  readonly pid: number;
  /** Resolves when the server has exited. */
  readonly exited: Promise<ExitInfo>;
  /** Where this run's output starts in the log file. */
  readonly logOffset: number;
}

// Tethered servers run under a tiny sh wrapper whose stdin is a pipe from us. When we die
// for any reason the kernel closes the pipe, the wrapper reads EOF and kills the server.
// It prints the server's pid first so tests can SIGKILL the server itself.
const TETHER = `
log=$1; shift
exec 3<&0 0</dev/null
"$@" >>"$log" 2>&1 3<&- &
server=$!
trap 'kill -KILL "$server" 2>/dev/null; exit 143' TERM INT HUP
echo "$server"
exec 1>/dev/null
(
  while read -r _ <&3; do :; done
  kill -TERM "$server" 2>/dev/null
  n=0
  while kill -0 "$server" 2>/dev/null && [ "$n" -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
  kill -KILL "$server" 2>/dev/null
) &
watcher=$!
exec 3<&-
wait "$server"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"
`;

// Tethered servers (pid -> binary) still alive; killed synchronously when this process exits.
const tethered = new Map<number, string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const [pid, binary] of tethered) {
      // The exit event of a server that died late may never have been delivered; make sure
      // the pid was not recycled before killing it.
      let argv0: string | undefined;
      try {
        argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
      } catch {
        continue;
      }
      if (argv0 === binary) signal(pid, 'SIGKILL');
    }
  });
}

function exitPromise(child: ChildProcess): Promise<ExitInfo> {
  return new Promise((resolve) => {
    child.once('exit', (code, sig) => resolve({ code, signal: sig }));
  });
}

function spawned(child: ChildProcess, binary: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', (err) =>
      reject(new ServerStartError(`cannot start ${binary}: ${err.message}`, { cause: err })),
    );
  });
}

async function readPidLine(child: ChildProcess): Promise<number> {
  let text = '';
  for await (const chunk of child.stdout!) text += String(chunk);
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) {
    throw new ServerStartError(`the tether wrapper printed '${text.trim()}' instead of the server's pid`);
  }
  return pid;
}

/** Launches the server process (no port check, no readiness wait); see startServer. */
export async function launchServer(spec: ServerSpec, mode: LaunchMode): Promise<LaunchedServer> {
  await mkdir(dirname(spec.logFile), { recursive: true });
  const fd = openSync(spec.logFile, 'a');
  let logOffset: number;
  try {
    logOffset = (await stat(spec.logFile)).size;
    writeSync(fd, `--- ${new Date().toISOString()} slotflow starts: ${spec.binary} ${spec.args.join(' ')}\n`);
  } catch (err) {
    closeSync(fd);
    throw err;
  }

  if (mode === LaunchMode.detached) {
    const child = spawn(spec.binary, spec.args, { detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const exited = exitPromise(child);
    await spawned(child, spec.binary);
    child.unref();
    return { pid: child.pid!, exited, logOffset };
  }

  installExitHook();
  // The wrapper's own complaints (e.g. the shell reporting a killed job) go to the log too.
  const child = spawn('sh', ['-c', TETHER, 'slotflow-tether', spec.logFile, spec.binary, ...spec.args], {
    stdio: ['pipe', 'pipe', fd],
  });
  closeSync(fd);
  const childExited = exitPromise(child);
  await spawned(child, 'sh');
  const pid = await readPidLine(child);
  tethered.set(pid, spec.binary);
  const exited = childExited.then((info) => {
    tethered.delete(pid);
    return info;
  });
  // Neither the wrapper nor its stdin pipe may keep a test process alive; the pipe stays open
  // (unreferenced) until this process ends, which is what tethers the server.
  child.unref();
  (child.stdin as Socket | null)?.unref();
  return { pid, exited, logOffset };
}

/** The last `lines` lines a server wrote to its log since `offset`. */
export async function logTail(logFile: string, offset = 0, lines = 25): Promise<string> {
  try {
    const handle = await open(logFile, 'r');
    try {
      const size = (await handle.stat()).size;
      const start = Math.max(offset, size - 64 * 1024);
      const buffer = Buffer.alloc(size - start);
      await handle.read(buffer, 0, buffer.length, start);
      return buffer.toString('utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } finally {
      await handle.close();
    }
  } catch (err) {
    return `(log ${logFile} unreadable: ${(err as Error).message})`;
  }
}

const BIND_FAILURE =
  /(?::|port[: ]+)(\d{2,5})\D{0,40}address already in use|address already in use\D{0,80}?(\d{2,5})/i;

async function earlyExitError(spec: ServerSpec, server: LaunchedServer, info: ExitInfo): Promise<Error> {
  const tail = await logTail(spec.logFile, server.logOffset);
  const how = info.signal ? `was killed by ${info.signal}` : `exited with code ${info.code}`;
  const match = BIND_FAILURE.exec(tail);
  const port = Number(match?.[1] ?? match?.[2]);
  const claim = spec.ports.find((c) => c.port === port);
  if (claim) {
    return new PortInUseError(
      `${spec.name} ${how}: port ${claim.port} for the ${claim.role} is already in use; ` +
        `stop whatever listens there or pick another port with ${claim.change}\n${tail}`,
      claim.port,
    );
  }
  return new ServerStartError(`${spec.name} ${how} during start-up; log ${spec.logFile}:\n${tail}`);
}

/** Polls spec.probe until it succeeds, the server exits (error with log tail) or time runs out. */
export async function waitUntilReady(spec: ServerSpec, server: LaunchedServer): Promise<void> {
  const deadline = Date.now() + spec.startTimeoutMs;
  let exit: ExitInfo | undefined;
  void server.exited.then((info) => (exit = info));
  let lastError: string;
  for (;;) {
    if (exit) throw await earlyExitError(spec, server, exit);
    try {
      await spec.probe();
      return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (exit) throw await earlyExitError(spec, server, exit);
    if (Date.now() >= deadline) {
      const tail = await logTail(spec.logFile, server.logOffset);
      throw new ServerStartError(
        `${spec.name} (pid ${server.pid}) did not become ready within ${spec.startTimeoutMs / 1000}s ` +
          `(last check: ${lastError}); it was stopped. Log ${spec.logFile}:\n${tail}`,
      );
    }
    await sleep(100);
  }
}

/**
 * Stops a server this process launched: SIGTERM, SIGKILL after graceMs; resolves when gone.
 * Polls the pid rather than awaiting `exited`: a detached child is unreferenced, and waiting on
 * its exit event alone would let the event loop run dry.
 */
export async function stopLaunched(server: LaunchedServer, graceMs: number): Promise<void> {
  await terminate(server.pid, graceMs);
}

/**
 * Checks the ports, launches the server and waits until it is ready; on any failure the
 * process is stopped before the error is thrown, so nothing half-started stays behind.
 */
export async function startServer(
  spec: ServerSpec,
  mode: LaunchMode,
  log: Logger,
  onLaunched?: (server: LaunchedServer) => void,
): Promise<LaunchedServer> {
  await assertPortsFree(spec.ports);
  log.info({ binary: spec.binary, args: spec.args, logFile: spec.logFile, mode }, `starting ${spec.name}`);
  const started = Date.now();
  const server = await launchServer(spec, mode);
  onLaunched?.(server);
  try {
    await waitUntilReady(spec, server);
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    log.warn({ serverPid: server.pid, reason }, `${spec.name} failed to start; stopping it`);
    await stopLaunched(server, 5_000);
    throw err;
  }
  log.info({ serverPid: server.pid, ms: Date.now() - started }, `${spec.name} is ready`);
  return server;
}
