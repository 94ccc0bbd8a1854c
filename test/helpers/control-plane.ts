// A control plane for workflow tests: real Temporal dev server and nats-server (from servers.ts),
// a signing key in a temp SLOTFLOW_HOME, and a slotflow worker running in this process.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Client } from '@temporalio/client';
import { loadConnectionConfig } from '../../runtime/config.ts';
import { createLogger } from '../../runtime/log.ts';
import type { ConnectionConfig } from '../../schema/index.ts';
import {
  initKeys,
  loadSigningKey,
  trustKeys,
  type SigningKey,
  type TrustedKeys,
} from '../../signing/index.ts';
import { startWorker, type RunningWorker } from '../../workers/worker.ts';
import { startStack, type StackHandle } from './servers.ts';
import { tearDown } from './teardown.ts';

export interface ControlPlane {
  readonly stack: StackHandle;
  readonly home: string;
  readonly config: ConnectionConfig;
  readonly env: Record<string, string>;
  readonly client: Client;
  readonly nc: NatsConnection;
  readonly trustedKeys: TrustedKeys;
  /** The control plane's signing key (enrols simulated nodes). */
  readonly key: SigningKey;
  worker: RunningWorker | undefined;
  startWorker(): Promise<RunningWorker>;
  stopWorker(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts servers, keys and (unless `worker: false`) an in-process worker. */
export async function startControlPlane({ worker = true }: { worker?: boolean } = {}): Promise<ControlPlane> {
  const stack = await startStack();
  const home = await mkdtemp(join(tmpdir(), 'slotflow-home-'));
  await initKeys(home);
  const key = await loadSigningKey(home);
  const env = { ...stack.env, SLOTFLOW_HOME: home };
  const config = loadConnectionConfig({ ...process.env, ...env });
  const client = await stack.temporal.client();
  const nc = await stack.nats.connect();
  const logger = createLogger('test:worker');
  if (!process.env['SLOTFLOW_LOG_LEVEL']) logger.level = 'warn';
  const plane: ControlPlane = {
    stack,
    home,
    config,
    env,
    client,
    nc,
    trustedKeys: trustKeys(key.publicKey),
    key,
    worker: undefined,
    async startWorker() {
      plane.worker = await startWorker({ config, logger });
      return plane.worker;
    },
    async stopWorker() {
      await plane.worker?.shutdown();
      plane.worker = undefined;
    },
    async stop() {
      await tearDown([
        ['stop the worker', () => plane.stopWorker()],
        ['close the NATS connection', () => nc.close()],
        ['stop the servers', () => stack.stop()],
        ['remove the home dir', () => rm(home, { recursive: true, force: true })],
      ]);
    },
  };
  if (worker) await plane.startWorker();
  return plane;
}
