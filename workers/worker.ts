import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { Logger } from 'pino';
import { createActivities } from '../activities/index.ts';
import { openEventLog } from '../eventlog/index.ts';
import { createProjector, openProjectionBucket, type Projector } from '../projection/index.ts';
import { connectNats } from '../runtime/nats.ts';
import { temporalConnectionOptions } from '../runtime/temporal.ts';
import { execaRunner } from '../runtime/runner.ts';
import type { ConnectionConfig } from '../schema/index.ts';
import { keyringSigner } from '../signing/index.ts';
import { TASK_QUEUE } from '../workflows/definitions.ts';
import {
  liveControlPlaneKeys,
  createRejectionRecorder,
  kvTrustCheckpoints,
  openEnrolmentBucket,
  openRejectionBucket,
  openTrustCheckpointBucket,
  startTrustGate,
} from '../trust/index.ts';
import { bridgeAckFloor, startEventBridge, type EventBridge } from './event-bridge.ts';
import { installTemporalRuntime } from './temporal-runtime.ts';

/** Path of the workflows module the worker bundles into Temporal's sandbox. */
export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/** Task queue for steps that must run on the host holding a file (publishing a build). */
export function hostTaskQueue(): string {
  return `${TASK_QUEUE}@${hostname()}`;
}

export interface RunningWorker {
  /** Resolves when the worker has stopped. */
  readonly done: Promise<void>;
  readonly projector: Projector;
  readonly bridge: EventBridge;
  /** Graceful stop: finish running tasks, then close connections. */
  shutdown(): Promise<void>;
}

/** Starts the Temporal worker, the event bridge and the projector against the configured servers. */
export async function startWorker({
  config,
  logger,
  workerOptions = {},
}: {
  config: ConnectionConfig;
  logger: Logger;
  workerOptions?: Partial<WorkerOptions>;
}): Promise<RunningWorker> {
  installTemporalRuntime(logger.child({ name: 'worker:temporal' }));
  const signer = keyringSigner(config.home);
  // Fail at start, not at the first command, when there is no key to sign with.
  const key = await signer.current();
  const nc = await connectNats(config.nats, 'slotflow-worker');
  const log = await openEventLog(nc);
  const kv = await openProjectionBucket(nc);
  // What reads the log from the start judges old decisions by every key the control plane ever
  // had (the log says from where on a retired key is refused); a certificate pinned into a plan
  // now needs a key that is trusted now. Both follow `keys rotate` without a restart.
  const historyKeys = await liveControlPlaneKeys(config.home, { retired: true });
  const trustedKeys = await liveControlPlaneKeys(config.home);
  // The bucket agents waiting for acceptance watch; theirs to read, the control plane's to make.
  await openEnrolmentBucket(nc);
  const rejections = createRejectionRecorder(
    await openRejectionBucket(nc),
    logger.child({ name: 'worker:trust' }),
  );
  const projector = createProjector({
    log,
    kv,
    logger: logger.child({ name: 'worker:projector' }),
    trustedKeys: historyKeys,
    recorder: rejections,
  });
  await projector.start();

  const options = await temporalConnectionOptions(config.temporal);
  const native = await NativeConnection.connect({ ...options, apiKey: config.temporal.apiKey });
  const connection = await Connection.connect(options);
  const client = new Client({ connection, namespace: config.temporal.namespace });

  const queue = hostTaskQueue();
  const activities = createActivities({
    nc,
    log,
    kv,
    signer,
    trustedKeys,
    runner: execaRunner,
    buildsDir: join(config.home, 'builds'),
    hostTaskQueue: queue,
  });
  const worker = await Worker.create({
    connection: native,
    namespace: config.temporal.namespace,
    taskQueue: TASK_QUEUE,
    workflowsPath: WORKFLOWS_PATH,
    activities,
    ...workerOptions,
  });
  const hostWorker = await Worker.create({
    connection: native,
    namespace: config.temporal.namespace,
    taskQueue: queue,
    activities,
  });
  // Resumes where the last worker stopped instead of replaying the log from sequence 1; only the
  // worker's NATS credentials may write the bucket, so other ones run without it.
  const checkpoints = await openTrustCheckpointBucket(nc).then(
    (bucket) => kvTrustCheckpoints({ kv: bucket, log, signingKey: () => signer.current(), trustedKeys }),
    (err: unknown) => {
      logger.warn(
        { err },
        'cannot open the trust checkpoint bucket (are these the worker credentials?); the event bridge replays the log from sequence 1 at every start',
      );
      return undefined;
    },
  );
  const gate = startTrustGate({
    log,
    trustedKeys: historyKeys,
    recorder: rejections,
    logger: logger.child({ name: 'worker:trust' }),
    ...(checkpoints ? { checkpoint: { store: checkpoints, answeredUpTo: () => bridgeAckFloor(log) } } : {}),
  });
  const bridge = await startEventBridge({
    log,
    client,
    logger: logger.child({ name: 'worker:bridge' }),
    gate,
  });
  logger.info(
    { taskQueue: TASK_QUEUE, hostTaskQueue: queue, temporal: config.temporal.address, keyId: key.keyId },
    'worker started',
  );

  const runs = Promise.all([worker.run(), hostWorker.run()]);
  let closing: Promise<void> | undefined;
  const done = runs.then(
    () => undefined,
    (err: unknown) => {
      logger.error({ err }, 'worker stopped with an error');
      throw err;
    },
  );

  async function close(): Promise<void> {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    if (hostWorker.getState() === 'RUNNING') hostWorker.shutdown();
    await runs.catch(() => undefined);
    await bridge.stop();
    await gate.stop();
    await projector.stop();
    await connection.close();
    await native.close();
    await nc.drain().catch(() => undefined);
    logger.info('worker stopped');
  }

  return {
    done,
    projector,
    bridge,
    shutdown: () => (closing ??= close()),
  };
}
