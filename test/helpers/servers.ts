// Real servers for tests: a Temporal dev server and a JetStream nats-server on free loopback
// ports with temp dirs. Servers are tethered to the test process (they die with it, even on
// SIGKILL) and every handle's stop() removes what it made. Use from a test file:
//
//   const stack = await startStack();
//   after(() => stack.stop());
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection } from '@temporalio/client';
import {
  connect,
  credsAuthenticator,
  type NatsConnection,
  type NodeConnectionOptions,
} from '@nats-io/transport-node';
import type { Logger } from 'pino';
import {
  createLogger,
  execaRunner,
  LaunchMode,
  natsRecipe,
  natsServerSpec,
  natsUrl,
  pickFreePorts,
  PortInUseError,
  prepareServerSecurity,
  provisionTool,
  REGISTRY_BINARY,
  registryAddress,
  registryServerSpec,
  startServer,
  temporalAddress,
  temporalRecipe,
  temporalServerSpec,
  temporalUiUrl,
  type LaunchedServer,
  type ResolvedTool,
  type ServerSecurity,
  type ServerSpec,
  type ToolRecipe,
} from '../../stack/index.ts';
import { signal, terminate, waitForExit } from '../../stack/pids.ts';

const HOST = '127.0.0.1';

let log: Logger | undefined;
function harnessLog(): Logger {
  if (!log) {
    log = createLogger('test:servers');
    // Start/ready lines are noise in test output; SLOTFLOW_LOG_LEVEL=info brings them back.
    if (!process.env['SLOTFLOW_LOG_LEVEL']) log.level = 'warn';
  }
  return log;
}

// Temp dirs still to remove; removed synchronously if the test process exits without stop().
const tempDirs = new Set<string>();
process.on('exit', () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

const tools = new Map<string, Promise<ResolvedTool>>();

/** The binary for a tool, provisioned once per test process (builds it if it must). */
function binaryFor(recipe: ToolRecipe): Promise<string> {
  let tool = tools.get(recipe.tool);
  if (!tool) {
    tool = provisionTool(recipe, {
      env: process.env,
      runner: execaRunner,
      say: (line) => harnessLog().info(line),
    });
    tools.set(recipe.tool, tool);
  }
  return tool.then((t) => t.path);
}

/**
 * Picks free ports, builds the spec and starts it tethered. Another process may grab a picked
 * port between the pick and the bind; then it picks again (three tries).
 */
async function startOnFreePorts(
  count: number,
  makeSpec: (ports: number[]) => ServerSpec,
): Promise<{ spec: ServerSpec; server: LaunchedServer }> {
  for (let attempt = 1; ; attempt++) {
    const spec = makeSpec(await pickFreePorts(count, HOST));
    try {
      return { spec, server: await startServer(spec, LaunchMode.tethered, harnessLog()) };
    } catch (err) {
      if (!(err instanceof PortInUseError) || attempt >= 3) throw err;
    }
  }
}

/** Signals the server and waits until it is gone (polling keeps the test's event loop alive). */
async function killServer(server: LaunchedServer, sig: NodeJS.Signals): Promise<void> {
  if (!signal(server.pid, sig)) return;
  if (!(await waitForExit(server.pid, 30_000))) {
    throw new Error(`server pid ${server.pid} still runs 30s after ${sig}`);
  }
}

/** A running Temporal dev server owned by one test file. */
export interface TemporalHandle {
  /** `host:port` of the gRPC frontend (TEMPORAL_ADDRESS). */
  readonly address: string;
  readonly namespace: string;
  readonly uiUrl: string;
  readonly logFile: string;
  /** The server's pid (changes on restart). */
  readonly pid: number;
  /** A Connection to the server, made once and closed by stop(). */
  connection(): Promise<Connection>;
  /** A Client on the namespace, over connection(). */
  client(): Promise<Client>;
  /** Signals the server (SIGKILL by default) and waits until it is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same ports (and the same SQLite file when persistent). */
  restart(): Promise<void>;
  /** Teardown: closes connections, stops the server, removes its temp dir. Idempotent. */
  stop(): Promise<void>;
}

export interface StartTemporalOptions {
  /** Namespace to create (default `default`). */
  readonly namespace?: string;
  /** Keep state in a SQLite file in the temp dir so it survives restart() (default in-memory). */
  readonly persistent?: boolean;
}

/** Starts a Temporal dev server (with slotflow's search attributes) on free loopback ports. */
export async function startTemporal(options: StartTemporalOptions = {}): Promise<TemporalHandle> {
  const dir = await makeTempDir('slotflow-temporal-');
  const binary = await binaryFor(temporalRecipe);
  const namespace = options.namespace ?? 'default';
  let spec: ServerSpec;
  let server: LaunchedServer;
  try {
    ({ spec, server } = await startOnFreePorts(4, ([port, uiPort, httpPort, metricsPort]) =>
      temporalServerSpec({
        binary,
        host: HOST,
        port: port!,
        uiPort: uiPort!,
        httpPort: httpPort!,
        metricsPort: metricsPort!,
        namespace,
        dbFile: options.persistent ? join(dir, 'temporal.sqlite') : undefined,
        logFile: join(dir, 'temporal.log'),
        portFlags: { port: 'a free port', uiPort: 'a free port' },
      }),
    ));
  } catch (err) {
    await removeTempDir(dir);
    throw err;
  }
  const port = Number(spec.args[spec.args.indexOf('--port') + 1]);
  const uiPort = Number(spec.args[spec.args.indexOf('--ui-port') + 1]);
  let connection: Promise<Connection> | undefined;
  let stopped = false;

  const handle: TemporalHandle = {
    address: temporalAddress({ host: HOST, port }),
    namespace,
    uiUrl: temporalUiUrl({ host: HOST, uiPort }),
    logFile: spec.logFile,
    get pid() {
      return server.pid;
    },
    connection() {
      connection ??= Connection.connect({ address: temporalAddress({ host: HOST, port }) });
      return connection;
    },
    async client() {
      return new Client({ connection: await handle.connection(), namespace });
    },
    async kill(sig = 'SIGKILL') {
      await killServer(server, sig);
    },
    async restart() {
      await killServer(server, 'SIGKILL');
      server = await startServer(spec, LaunchMode.tethered, harnessLog());
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (connection) await (await connection.catch(() => undefined))?.close();
      await terminate(server.pid, 5_000);
      await removeTempDir(dir);
    },
  };
  return handle;
}

/**
 * Resolves once the client has reconnected (a PING round trip succeeds). A request sent while
 * the client is still reconnecting can be lost, so restart() waits for its clients.
 */
async function untilReconnected(nc: NatsConnection): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (nc.isClosed()) return;
    // flush() rejects when the connection drops or reconnects; the next one then succeeds.
    const flushed = await Promise.race([nc.flush().then(() => true), sleep(1_000).then(() => false)]).catch(
      () => false,
    );
    if (flushed) return;
    if (Date.now() > deadline) throw new Error(`a client of ${nc.getServer()} did not reconnect within 15s`);
  }
}

/** A running JetStream nats-server owned by one test file; survives kill() + restart(). */
export interface NatsHandle {
  /** `nats://host:port` (NATS_URL). */
  readonly url: string;
  readonly port: number;
  readonly monitorPort: number;
  /** JetStream store; kept across restart(), so streams survive. */
  readonly storeDir: string;
  readonly logFile: string;
  /** The server's pid (changes on restart). */
  readonly pid: number;
  /** Operator-mode auth and TLS, when started with `{ secure: true }` (URL `tls://`). */
  readonly security?: ServerSecurity;
  /**
   * A client connection (as the operator CLI on a secured server; retrying reconnects forever by default, so it rides out kill() and
   * restart()); closed by stop().
   */
  connect(options?: Partial<NodeConnectionOptions>): Promise<NatsConnection>;
  /** Signals the server (SIGKILL by default) and waits until it is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Starts the server again on the same port and store dir (killing it first if it runs), then
   * waits until the clients made by connect() have reconnected.
   */
  restart(): Promise<void>;
  /** Teardown: closes connections, stops the server, removes its temp dir. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts a JetStream nats-server on free loopback ports with a temp store dir; `secure` runs it
 * as `stack up` does: TLS required, operator-mode JWT auth (see stack/nats-auth.ts).
 */
export async function startNats(options: { secure?: boolean } = {}): Promise<NatsHandle> {
  const dir = await makeTempDir('slotflow-nats-');
  const binary = await binaryFor(natsRecipe);
  const storeDir = join(dir, 'jetstream');
  let spec: ServerSpec;
  let server: LaunchedServer;
  let security: ServerSecurity | undefined;
  try {
    if (options.secure) security = await prepareServerSecurity(join(dir, 'nats-auth'));
    const secured = security ? { configFile: security.configFile, tls: true } : {};
    ({ spec, server } = await startOnFreePorts(2, ([port, monitorPort]) =>
      natsServerSpec({
        binary,
        host: HOST,
        port: port!,
        monitorPort: monitorPort!,
        storeDir,
        logFile: join(dir, 'nats.log'),
        portFlags: { port: 'a free port' },
        ...secured,
      }),
    ));
  } catch (err) {
    await removeTempDir(dir);
    throw err;
  }
  const port = Number(spec.args[spec.args.indexOf('-p') + 1]);
  const monitorPort = Number(spec.args[spec.args.indexOf('-m') + 1]);
  const url = natsUrl({ host: HOST, port, tls: security !== undefined });
  const clients = new Set<NatsConnection>();
  let stopped = false;
  const asCli = security
    ? {
        authenticator: credsAuthenticator(await readFile(security.cliCreds)),
        tls: { caFile: security.ca },
      }
    : {};

  return {
    url,
    port,
    monitorPort,
    storeDir,
    logFile: spec.logFile,
    ...(security ? { security } : {}),
    get pid() {
      return server.pid;
    },
    async connect(options = {}) {
      const nc = await connect({
        servers: url,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        ...asCli,
        ...options,
      });
      clients.add(nc);
      void nc.closed().then(() => clients.delete(nc));
      return nc;
    },
    async kill(sig = 'SIGKILL') {
      await killServer(server, sig);
    },
    async restart() {
      await killServer(server, 'SIGKILL');
      server = await startServer(spec, LaunchMode.tethered, harnessLog());
      await Promise.all([...clients].map(untilReconnected));
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all([...clients].map((nc) => nc.close().catch(() => undefined)));
      await terminate(server.pid, 5_000);
      await removeTempDir(dir);
    },
  };
}

/** Temporal and NATS together, plus the environment a slotflow process needs to use them. */
export interface StackHandle {
  readonly temporal: TemporalHandle;
  readonly nats: NatsHandle;
  readonly env: { TEMPORAL_ADDRESS: string; TEMPORAL_NAMESPACE: string; NATS_URL: string };
  stop(): Promise<void>;
}

/** Starts both servers in parallel; if one fails, the other is stopped before the error is thrown. */
export async function startStack(options: StartTemporalOptions = {}): Promise<StackHandle> {
  const [temporal, nats] = await Promise.allSettled([startTemporal(options), startNats()]);
  if (temporal.status === 'rejected' || nats.status === 'rejected') {
    if (temporal.status === 'fulfilled') await temporal.value.stop();
    if (nats.status === 'fulfilled') await nats.value.stop();
    throw temporal.status === 'rejected' ? temporal.reason : (nats as PromiseRejectedResult).reason;
  }
  return {
    temporal: temporal.value,
    nats: nats.value,
    env: {
      TEMPORAL_ADDRESS: temporal.value.address,
      TEMPORAL_NAMESPACE: temporal.value.namespace,
      NATS_URL: nats.value.url,
    },
    async stop() {
      await Promise.all([temporal.value.stop(), nats.value.stop()]);
    },
  };
}

/** A running OCI registry (the distribution registry) owned by one test file. */
export interface RegistryHandle {
  /** `127.0.0.1:port`, what SLOTFLOW_REGISTRY takes and references start with. */
  readonly address: string;
  /** Teardown: stops the registry and removes its blobs. Idempotent. */
  stop(): Promise<void>;
}

/** Starts Debian's docker-registry on a free loopback port with a temp storage dir. */
export async function startRegistry(): Promise<RegistryHandle> {
  const dir = await makeTempDir('slotflow-registry-');
  let spec: ServerSpec;
  let server: LaunchedServer;
  try {
    ({ spec, server } = await startOnFreePorts(1, ([port]) =>
      registryServerSpec({
        binary: REGISTRY_BINARY,
        host: HOST,
        port: port!,
        dataDir: dir,
        logFile: join(dir, 'registry.log'),
        portFlag: 'a free port',
      }),
    ));
  } catch (err) {
    await removeTempDir(dir);
    throw err;
  }
  const port = spec.ports[0]!.port;
  let stopped = false;
  return {
    address: registryAddress({ host: HOST, port }),
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate(server.pid, 5_000);
      await removeTempDir(dir);
    },
  };
}
