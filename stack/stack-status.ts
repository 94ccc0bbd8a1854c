import { isRunningBinary } from './pids.ts';
import { natsHealthUrl, probeJetStream, probeNatsHealthz, recordedNatsUrl } from './nats-server.ts';
import { probeRegistry, registryAddress } from './registry.ts';
import { readRecord, type StackRecord } from './state.ts';
import { probeHttp, probeTemporal, temporalAddress, temporalUiUrl } from './temporal-server.ts';

/** The environment a client of this stack exports. */
export interface StackEnv {
  readonly TEMPORAL_ADDRESS: string;
  readonly TEMPORAL_NAMESPACE: string;
  readonly NATS_URL: string;
  /** The operator CLI's creds file, when nats-server runs secured. */
  readonly NATS_CREDS?: string;
  /** The CA of the server's certificate, when nats-server runs secured. */
  readonly NATS_TLS_CA?: string;
  /** `host:port` of the stack's OCI registry, when it runs one. */
  readonly SLOTFLOW_REGISTRY?: string;
}

/** Health of the OCI registry: `healthy` when `GET /v2/` answers 200. */
export interface RegistryStatus {
  readonly address: string;
  readonly pid: number;
  readonly healthy: boolean;
  readonly problems: string[];
  readonly logFile: string;
  readonly dataDir: string;
}

/** Health of the Temporal dev server: `healthy` when the namespace answers and the UI serves. */
export interface TemporalStatus {
  readonly address: string;
  readonly namespace: string;
  readonly ui: string;
  readonly pid: number;
  readonly healthy: boolean;
  /** What failed, one entry per failed check; empty when healthy. */
  readonly problems: string[];
  readonly logFile: string;
}

/** Health of nats-server: `healthy` when healthz passes and a client reads JetStream info. */
export interface NatsStatus {
  readonly url: string;
  readonly monitor: string;
  readonly pid: number;
  readonly healthy: boolean;
  readonly problems: string[];
  readonly logFile: string;
  /** Where the credentials are, when the server runs with TLS and operator-mode auth. */
  readonly security?: NatsSecurityStatus;
}

/** The secured nats-server's files: whom each creds file is for, and where to issue more. */
export interface NatsSecurityStatus {
  readonly ca: string;
  readonly cliCreds: string;
  readonly workerCreds: string;
  /** Node creds are issued into `<authDir>/creds` (issueNodeCredentials). */
  readonly authDir: string;
}

/** What `slotflow stack status --json` prints. */
export type StackStatus =
  | { readonly up: false; readonly dataDir: string }
  | {
      readonly up: true;
      readonly dataDir: string;
      readonly healthy: boolean;
      readonly temporal: TemporalStatus;
      readonly nats: NatsStatus;
      /** Absent when the stack runs no registry (its binary was missing at `stack up`). */
      readonly registry?: RegistryStatus;
      readonly env: StackEnv;
    };

/** The environment variables that point clients at a recorded stack. */
export function stackEnv(record: StackRecord): StackEnv {
  return {
    TEMPORAL_ADDRESS: temporalAddress(record.temporal),
    TEMPORAL_NAMESPACE: record.temporal.namespace,
    NATS_URL: recordedNatsUrl(record.nats),
    ...(record.nats.security
      ? { NATS_CREDS: record.nats.security.cliCreds, NATS_TLS_CA: record.nats.security.ca }
      : {}),
    ...(record.registry ? { SLOTFLOW_REGISTRY: registryAddress(record.registry) } : {}),
  };
}

async function check(problems: string[], what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function temporalStatus(record: StackRecord): Promise<TemporalStatus> {
  const t = record.temporal;
  const address = temporalAddress(t);
  const ui = temporalUiUrl(t);
  const problems: string[] = [];
  if (!(await isRunningBinary(t.pid, t.binary))) {
    problems.push(`process ${t.pid} (${t.binary}) is not running; see ${t.logFile}`);
  } else {
    await check(problems, `gRPC ${address} namespace ${t.namespace}`, () =>
      probeTemporal(address, t.namespace),
    );
    await check(problems, `Web UI ${ui}`, () => probeHttp(ui));
  }
  const healthy = problems.length === 0;
  return { address, namespace: t.namespace, ui, pid: t.pid, healthy, problems, logFile: t.logFile };
}

async function natsStatus(record: StackRecord): Promise<NatsStatus> {
  const n = record.nats;
  const url = recordedNatsUrl(n);
  const monitor = natsHealthUrl(n, false);
  const problems: string[] = [];
  if (!(await isRunningBinary(n.pid, n.binary))) {
    problems.push(`process ${n.pid} (${n.binary}) is not running; see ${n.logFile}`);
  } else {
    await check(problems, 'healthz', () => probeNatsHealthz(natsHealthUrl(n)));
    const auth = n.security ? { credsFile: n.security.cliCreds, caFile: n.security.ca } : undefined;
    await check(problems, `JetStream via ${url}`, () => probeJetStream(url, 2_000, auth));
  }
  const healthy = problems.length === 0;
  const security = n.security
    ? {
        ca: n.security.ca,
        cliCreds: n.security.cliCreds,
        workerCreds: n.security.workerCreds,
        authDir: n.security.authDir,
      }
    : undefined;
  return {
    url,
    monitor,
    pid: n.pid,
    healthy,
    problems,
    logFile: n.logFile,
    ...(security ? { security } : {}),
  };
}

async function registryStatus(r: NonNullable<StackRecord['registry']>): Promise<RegistryStatus> {
  const address = registryAddress(r);
  const problems: string[] = [];
  if (!(await isRunningBinary(r.pid, r.binary))) {
    problems.push(`process ${r.pid} (${r.binary}) is not running; see ${r.logFile}`);
  } else {
    await check(problems, `GET http://${address}/v2/`, () => probeRegistry(address));
  }
  const healthy = problems.length === 0;
  return { address, pid: r.pid, healthy, problems, logFile: r.logFile, dataDir: r.dataDir };
}

/** Checks each server the stack record names: process, client protocol and (Temporal) the UI. */
export async function stackStatus(dataDir: string): Promise<StackStatus> {
  const record = await readRecord(dataDir);
  if (!record) return { up: false, dataDir };
  const [temporal, nats, registry] = await Promise.all([
    temporalStatus(record),
    natsStatus(record),
    record.registry ? registryStatus(record.registry) : undefined,
  ]);
  const healthy = temporal.healthy && nats.healthy && (registry?.healthy ?? true);
  return {
    up: true,
    dataDir,
    healthy,
    temporal,
    nats,
    ...(registry ? { registry } : {}),
    env: stackEnv(record),
  };
}
