import type { Logger } from 'pino';
import { isAlive, isRunningBinary, StopOutcome, terminate } from './pids.ts';
import { readRecord, removeRecord } from './state.ts';

/** What happened to one recorded server. */
export interface StoppedServer {
  readonly name: 'temporal' | 'nats' | 'registry';
  readonly pid: number;
  /** `pid-reused`: the pid now belongs to another program, which was left alone. */
  readonly outcome: StopOutcome | 'pid-reused';
}

/** What `slotflow stack down --json` prints. */
export interface StackDownResult {
  readonly dataDir: string;
  readonly wasUp: boolean;
  readonly stopped: StoppedServer[];
}

// Temporal flushes SQLite on SIGTERM; give it time before SIGKILL.
const GRACE_MS = 10_000;

/**
 * Stops exactly the processes `stack up` recorded, after checking each pid still runs the
 * recorded binary, then removes the record. Data (SQLite, JetStream store, registry blobs) is kept.
 */
export async function stackDown(dataDir: string, log: Logger): Promise<StackDownResult> {
  const record = await readRecord(dataDir);
  if (!record) return { dataDir, wasUp: false, stopped: [] };
  const servers = [
    { name: 'temporal', pid: record.temporal.pid, binary: record.temporal.binary },
    { name: 'nats', pid: record.nats.pid, binary: record.nats.binary },
    ...(record.registry
      ? [{ name: 'registry', pid: record.registry.pid, binary: record.registry.binary } as const]
      : []),
  ] as const;
  const stopped = await Promise.all(
    servers.map(async ({ name, pid, binary }): Promise<StoppedServer> => {
      if (!(await isRunningBinary(pid, binary))) {
        const outcome = (await isAlive(pid)) ? 'pid-reused' : StopOutcome.notRunning;
        log.warn({ serverPid: pid, binary, outcome }, `${name} was not running as recorded; nothing to stop`);
        return { name, pid, outcome };
      }
      const outcome = await terminate(pid, GRACE_MS);
      log.info({ serverPid: pid, outcome }, `stopped ${name}`);
      return { name, pid, outcome };
    }),
  );
  await removeRecord(dataDir);
  return { dataDir, wasUp: true, stopped };
}
