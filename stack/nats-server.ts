import { readFile } from 'node:fs/promises';
import type { ServerSpec } from './server-process.ts';

/** Where a JetStream-enabled nats-server listens and keeps its streams. */
export interface NatsServerOptions {
  readonly binary: string;
  readonly host: string;
  readonly port: number;
  /** HTTP monitoring port (healthz). */
  readonly monitorPort: number;
  /** JetStream store directory; reuse it across restarts to keep streams. */
  readonly storeDir: string;
  readonly logFile: string;
  /** A configuration file (operator-mode auth and TLS, see nats-auth.ts); flags override it. */
  readonly configFile?: string;
  /** The client port requires TLS (the configuration file says so); URLs say `tls://`. */
  readonly tls?: boolean;
  /** How an operator moves each port elsewhere, for error messages. */
  readonly portFlags?: Partial<Record<'port' | 'monitorPort', string>>;
  readonly startTimeoutMs?: number;
}

/** nats-server's command-line arguments (also understood by the Debian 2.9 fallback). */
export function natsArgs(o: NatsServerOptions): string[] {
  const config = o.configFile ? ['-c', o.configFile] : [];
  return [
    ...config,
    '-a',
    o.host,
    '-p',
    String(o.port),
    '-js',
    '-sd',
    o.storeDir,
    '-m',
    String(o.monitorPort),
  ];
}

/** The client URL, the form NATS_URL takes. */
export function natsUrl(o: Pick<NatsServerOptions, 'host' | 'port' | 'tls'>): string {
  return `${o.tls ? 'tls' : 'nats'}://${o.host}:${o.port}`;
}

/** The client URL of a recorded server: `tls://` when it was started secured. */
export function recordedNatsUrl(n: { host: string; port: number; security?: unknown }): string {
  return natsUrl({ host: n.host, port: n.port, tls: n.security !== undefined });
}

/** The monitoring health URL that answers 200 once JetStream is enabled. */
export function natsHealthUrl(
  o: Pick<NatsServerOptions, 'host' | 'monitorPort'>,
  jsEnabledOnly = true,
): string {
  return `http://${o.host}:${o.monitorPort}/healthz${jsEnabledOnly ? '?js-enabled-only=true' : ''}`;
}

/** Resolves when healthz answers 200; throws with what it answered otherwise. */
export async function probeNatsHealthz(url: string, timeoutMs = 2_000): Promise<void> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const body = await response.text();
  if (response.status !== 200) throw new Error(`${url} answered HTTP ${response.status}: ${body.trim()}`);
}

/** How a probe authenticates: a creds file and the CA that signed the server's certificate. */
export interface ProbeAuth {
  readonly credsFile: string;
  readonly caFile: string;
}

/** Connects as a client and reads the JetStream account info; throws why not. */
export async function probeJetStream(url: string, timeoutMs = 2_000, auth?: ProbeAuth): Promise<void> {
  // Loaded on first use, like the Temporal client: only status checks need a NATS client.
  const [{ connect, credsAuthenticator }, { jetstreamManager }] = await Promise.all([
    import('@nats-io/transport-node'),
    import('@nats-io/jetstream'),
  ]);
  const nc = await connect({
    servers: url,
    timeout: timeoutMs,
    reconnect: false,
    ...(auth
      ? { authenticator: credsAuthenticator(await readFile(auth.credsFile)), tls: { caFile: auth.caFile } }
      : {}),
  });
  try {
    const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
    await jsm.getAccountInfo();
  } finally {
    await nc.close();
  }
}

/** The ServerSpec for a JetStream nats-server (ready = healthz with JetStream enabled). */
export function natsServerSpec(o: NatsServerOptions): ServerSpec {
  return {
    name: 'nats-server',
    binary: o.binary,
    args: natsArgs(o),
    logFile: o.logFile,
    ports: [
      { host: o.host, port: o.port, role: 'NATS client port', change: o.portFlags?.port ?? '--nats-port' },
      {
        host: o.host,
        port: o.monitorPort,
        role: 'NATS monitoring port',
        change: o.portFlags?.monitorPort ?? 'a free port',
      },
    ],
    startTimeoutMs: o.startTimeoutMs ?? 20_000,
    probe: () => probeNatsHealthz(natsHealthUrl(o)),
  };
}
