import { access, constants, mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import {
  defaultProvisionDeps,
  natsRecipe,
  provisionBinaries,
  provisionTool,
  temporalRecipe,
  type ProvisionDeps,
  type ResolvedTool,
} from './binaries.ts';
import { stackDefaults, stackLayout } from './layout.ts';
import { createLogger } from '../runtime/log.ts';
import { prepareServerSecurity } from './nats-auth.ts';
import { natsServerSpec } from './nats-server.ts';
import { REGISTRY_BINARY, registryServerSpec } from './registry.ts';
import { isRunningBinary, signal } from './pids.ts';
import { assertPortsFree, pickFreePorts } from './ports.ts';
import {
  LaunchMode,
  startServer,
  stopLaunched,
  type LaunchedServer,
  type ServerSpec,
} from './server-process.ts';
import {
  readRecord,
  writeRecord,
  type NatsRecord,
  type RegistryRecord,
  type StackRecord,
  type TemporalRecord,
} from './state.ts';
import { temporalServerSpec } from './temporal-server.ts';

/** What `slotflow stack up` was asked for; unset ports fall back to the record, then defaults. */
export interface StackUpOptions {
  readonly dataDir: string;
  readonly temporalPort?: number;
  readonly uiPort?: number;
  readonly natsPort?: number;
  readonly registryPort?: number;
  /** The registry binary (default Debian's `/usr/bin/docker-registry`); without one the stack runs no registry. */
  readonly registryBinary?: string;
  /**
   * Start nats-server without TLS and authentication (plain `nats://`, anyone on the host may
   * publish anything). Off by default; only for setups that cannot carry credentials yet.
   */
  readonly insecureNats?: boolean;
  readonly namespace?: string;
  readonly provision?: ProvisionDeps;
  /** Makes the logger for a component (`stack`, `stack:temporal`, `stack:nats`). */
  readonly logger?: (component: string) => Logger;
}

type ServerName = 'temporal' | 'nats' | 'registry';

/** The outcome of `stack up`: which servers this call started, and the record now on disk. */
export interface StackUpResult {
  readonly alreadyUp: boolean;
  readonly started: ServerName[];
  readonly record: StackRecord;
  /** Things the operator should know, e.g. flags ignored because a server already runs. */
  readonly notes: string[];
}

function conflicts(
  o: StackUpOptions,
  record: StackRecord,
  keep: { temporal: boolean; nats: boolean; registry: boolean },
): string[] {
  const notes: string[] = [];
  const differs = (
    flag: string,
    asked: number | string | undefined,
    running: number | string | undefined,
    when: boolean,
  ) => {
    if (when && asked !== undefined && asked !== running) {
      notes.push(
        `${flag} ${asked} ignored: the running stack uses ${running}; run 'slotflow stack down' first`,
      );
    }
  };
  differs('--temporal-port', o.temporalPort, record.temporal.port, keep.temporal);
  differs('--ui-port', o.uiPort, record.temporal.uiPort, keep.temporal);
  differs('--namespace', o.namespace, record.temporal.namespace, keep.temporal);
  differs('--nats-port', o.natsPort, record.nats.port, keep.nats);
  const secured = record.nats.security !== undefined;
  if (keep.nats && secured === Boolean(o.insecureNats)) {
    notes.push(
      `the running nats-server is ${secured ? 'secured (TLS and credentials)' : 'not secured'}, which this call would change; run 'slotflow stack down' first`,
    );
  }
  return notes;
}

async function provisionNeeded(
  deps: ProvisionDeps,
  need: { temporal: boolean; nats: boolean },
): Promise<{ temporal?: ResolvedTool; nats?: ResolvedTool }> {
  if (need.temporal && need.nats) return provisionBinaries(deps);
  if (need.temporal) return { temporal: await provisionTool(temporalRecipe, deps) };
  if (need.nats) return { nats: await provisionTool(natsRecipe, deps) };
  return {};
}

/**
 * Starts the Temporal dev server, a JetStream nats-server and an OCI registry detached (they outlive the CLI),
 * provisioning binaries first, and records them in `<dataDir>/stack.json`. Servers the record
 * names that still run are kept, so a second `up` is a no-op and a crashed server is restarted.
 * When a start fails, whatever this call started is stopped again.
 */
export async function stackUp(o: StackUpOptions): Promise<StackUpResult> {
  const dataDir = resolve(o.dataDir);
  const logger = o.logger ?? createLogger;
  const log = logger('stack');
  const previous = await readRecord(dataDir);
  const keep = {
    temporal: previous ? await isRunningBinary(previous.temporal.pid, previous.temporal.binary) : false,
    nats: previous ? await isRunningBinary(previous.nats.pid, previous.nats.binary) : false,
    registry: previous?.registry
      ? await isRunningBinary(previous.registry.pid, previous.registry.binary)
      : false,
  };
  const notes = previous ? conflicts(o, previous, keep) : [];
  const registryBinary = keep.registry ? undefined : await findRegistry(o.registryBinary ?? REGISTRY_BINARY);
  if (!keep.registry && !registryBinary) {
    notes.push(
      `no OCI registry started: ${o.registryBinary ?? REGISTRY_BINARY} is missing; install it (apt-get install docker-registry) for 'image build --push' and OCI rollouts`,
    );
  }
  if (previous && keep.temporal && keep.nats && (keep.registry || !registryBinary)) {
    return { alreadyUp: true, started: [], record: previous, notes };
  }
  if (previous) log.info({ keep }, 'stack record found; restarting the servers that are not running');

  const tools = await provisionNeeded(o.provision ?? defaultProvisionDeps(), {
    temporal: !keep.temporal,
    nats: !keep.nats,
  });
  const layout = stackLayout(dataDir);
  const host = stackDefaults.host;
  // The HTTP API, metrics and NATS monitoring ports are not part of the CLI contract: take free
  // ones rather than fixed numbers that might collide, and record them.
  const [httpPort, metricsPort, monitorPort] = (await pickFreePorts(3, host)) as [number, number, number];
  const now = new Date().toISOString();

  const wanted: {
    temporal?: Omit<TemporalRecord, 'pid'>;
    nats?: Omit<NatsRecord, 'pid'>;
    registry?: Omit<RegistryRecord, 'pid'>;
  } = {};
  const specs: { name: ServerName; spec: ServerSpec }[] = [];
  if (tools.temporal) {
    const t: Omit<TemporalRecord, 'pid'> = {
      binary: tools.temporal.path,
      version: tools.temporal.version,
      host,
      port: o.temporalPort ?? previous?.temporal.port ?? stackDefaults.temporalPort,
      uiPort: o.uiPort ?? previous?.temporal.uiPort ?? stackDefaults.uiPort,
      httpPort,
      metricsPort,
      namespace: o.namespace ?? previous?.temporal.namespace ?? stackDefaults.namespace,
      dbFile: layout.temporalDb,
      logFile: layout.temporalLog,
      startedAt: now,
    };
    wanted.temporal = t;
    specs.push({ name: 'temporal', spec: temporalServerSpec(t) });
  }
  if (tools.nats) {
    const security = o.insecureNats ? undefined : await prepareServerSecurity(layout.natsAuth);
    const n: Omit<NatsRecord, 'pid'> = {
      binary: tools.nats.path,
      version: tools.nats.version,
      host,
      port: o.natsPort ?? previous?.nats.port ?? stackDefaults.natsPort,
      monitorPort,
      storeDir: layout.natsStore,
      logFile: layout.natsLog,
      startedAt: now,
      ...(security ? { security } : {}),
    };
    wanted.nats = n;
    const secured = security ? { configFile: security.configFile, tls: true } : {};
    specs.push({ name: 'nats', spec: natsServerSpec({ ...n, ...secured }) });
  }
  if (registryBinary) {
    const r: Omit<RegistryRecord, 'pid'> = {
      binary: registryBinary,
      host,
      port: o.registryPort ?? previous?.registry?.port ?? stackDefaults.registryPort,
      dataDir: layout.registryDir,
      logFile: layout.registryLog,
      startedAt: now,
    };
    wanted.registry = r;
    specs.push({ name: 'registry', spec: registryServerSpec(r) });
  }
  // All ports at once first: catches one port given to two servers, before anything starts.
  await assertPortsFree(specs.flatMap((s) => s.spec.ports));
  await mkdir(layout.natsStore, { recursive: true });

  const launched = new Map<ServerName, LaunchedServer>();
  const results = await withInterruptCleanup(launched, () =>
    Promise.allSettled(
      specs.map(async ({ name, spec }) => {
        const server = await startServer(spec, LaunchMode.detached, logger(`stack:${name}`), (s) =>
          launched.set(name, s),
        );
        return { name, server };
      }),
    ),
  );
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0) {
    // The failed ones were stopped by startServer; stop the ones that did come up.
    await Promise.all(
      results.map((r) => (r.status === 'fulfilled' ? stopLaunched(r.value.server, 5_000) : undefined)),
    );
    for (const extra of failed.slice(1))
      log.error({ err: extra.reason }, 'another server failed to start too');
    throw failed[0]!.reason;
  }

  const temporal = wanted.temporal
    ? { ...wanted.temporal, pid: launched.get('temporal')!.pid }
    : previous!.temporal;
  const nats = wanted.nats ? { ...wanted.nats, pid: launched.get('nats')!.pid } : previous!.nats;
  const registry = wanted.registry
    ? { ...wanted.registry, pid: launched.get('registry')!.pid }
    : keep.registry
      ? previous?.registry
      : undefined;
  const record: StackRecord = { version: 1, dataDir, temporal, nats, ...(registry ? { registry } : {}) };
  await writeRecord(record);
  return { alreadyUp: false, started: specs.map((s) => s.name), record, notes };
}

/** The registry binary when it exists and is executable, else undefined. */
async function findRegistry(binary: string): Promise<string | undefined> {
  try {
    await access(binary, constants.X_OK);
    return binary;
  } catch {
    return undefined;
  }
}

/**
 * Runs fn; if the CLI is interrupted (Ctrl-C, SIGTERM) meanwhile, kills the servers launched so
 * far before exiting, since they are detached and no record names them yet.
 */
async function withInterruptCleanup<T>(
  launched: Map<string, LaunchedServer>,
  fn: () => Promise<T>,
): Promise<T> {
  const onSignal = (sig: NodeJS.Signals) => {
    for (const server of launched.values()) signal(server.pid, 'SIGKILL');
    process.stderr.write(`slotflow: interrupted by ${sig}; stopped the servers started so far\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await fn();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
