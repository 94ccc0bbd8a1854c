import type { PortClaim } from './ports.ts';
import type { ServerSpec } from './server-process.ts';

/** The custom search attributes slotflow's workflows set, registered when the server starts. */
export const searchAttributes = {
  RolloutId: 'Keyword',
  NodeId: 'Keyword',
  ImageDigest: 'Keyword',
  Wave: 'Int',
} as const;

/** Where a Temporal dev server listens and keeps its state. */
export interface TemporalServerOptions {
  readonly binary: string;
  readonly host: string;
  /** gRPC frontend (clients connect here). */
  readonly port: number;
  readonly uiPort: number;
  readonly httpPort: number;
  readonly metricsPort: number;
  /** Created at start-up (the `default` namespace always exists too). */
  readonly namespace: string;
  /** SQLite file; in-memory (lost when the server stops) when omitted. */
  readonly dbFile?: string;
  readonly logFile: string;
  /** How an operator moves each port elsewhere, for error messages. */
  readonly portFlags?: Partial<Record<'port' | 'uiPort' | 'httpPort' | 'metricsPort', string>>;
  readonly startTimeoutMs?: number;
}

/** The dev server's command-line arguments (flags checked against Temporal CLI v1.5.1). */
export function temporalArgs(o: TemporalServerOptions): string[] {
  const args = ['server', 'start-dev', '--ip', o.host, '--port', String(o.port)];
  args.push('--ui-port', String(o.uiPort), '--http-port', String(o.httpPort));
  args.push('--metrics-port', String(o.metricsPort), '--namespace', o.namespace);
  if (o.dbFile) args.push('--db-filename', o.dbFile);
  for (const [name, type] of Object.entries(searchAttributes))
    args.push('--search-attribute', `${name}=${type}`);
  // Keep the operator's client config (~/.config/temporalio, TEMPORAL_* env) out of the server.
  args.push('--disable-config-file', '--disable-config-env');
  return args;
}

/** `host:port` of the gRPC frontend, the form TEMPORAL_ADDRESS takes. */
export function temporalAddress(o: Pick<TemporalServerOptions, 'host' | 'port'>): string {
  return `${o.host}:${o.port}`;
}

/** The Web UI's URL. */
export function temporalUiUrl(o: Pick<TemporalServerOptions, 'host' | 'uiPort'>): string {
  return `http://${o.host}:${o.uiPort}`;
}

/**
 * Connects, asks for system info and describes the namespace, within timeoutMs; throws why
 * not. Describing the namespace matters: the frontend answers before namespaces are loaded.
 */
export async function probeTemporal(address: string, namespace: string, timeoutMs = 2_000): Promise<void> {
  // Loaded on first use: the client takes most of a second to import, and commands that only
  // provision or parse flags should not pay for it.
  const { Connection } = await import('@temporalio/client');
  const connection = await Connection.connect({ address, connectTimeout: timeoutMs });
  try {
    await connection.withDeadline(Date.now() + timeoutMs, async () => {
      await connection.workflowService.describeNamespace({ namespace });
    });
  } finally {
    await connection.close();
  }
}

/** Resolves when the Web UI answers HTTP 2xx/3xx; throws with the status or error otherwise. */
export async function probeHttp(url: string, timeoutMs = 2_000): Promise<void> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
  await response.body?.cancel();
  if (response.status >= 400) throw new Error(`${url} answered HTTP ${response.status}`);
}

/** The ServerSpec for a Temporal dev server (ready = namespace described and UI answering). */
export function temporalServerSpec(o: TemporalServerOptions): ServerSpec {
  const flag = (k: keyof NonNullable<TemporalServerOptions['portFlags']>, fallback: string) =>
    o.portFlags?.[k] ?? fallback;
  const ports: PortClaim[] = [
    { host: o.host, port: o.port, role: 'Temporal gRPC frontend', change: flag('port', '--temporal-port') },
    { host: o.host, port: o.uiPort, role: 'Temporal Web UI', change: flag('uiPort', '--ui-port') },
    { host: o.host, port: o.httpPort, role: 'Temporal HTTP API', change: flag('httpPort', 'a free port') },
    {
      host: o.host,
      port: o.metricsPort,
      role: 'Temporal metrics endpoint',
      change: flag('metricsPort', 'a free port'),
    },
  ];
  return {
    name: 'Temporal dev server',
    binary: o.binary,
    args: temporalArgs(o),
    logFile: o.logFile,
    ports,
    startTimeoutMs: o.startTimeoutMs ?? 60_000,
    probe: async () => {
      await probeTemporal(temporalAddress(o), o.namespace);
      await probeHttp(temporalUiUrl(o));
    },
  };
}
