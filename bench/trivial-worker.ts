// A bench-only worker hosting trivialWorkflow (one no-op activity), and the rate at which the
// dev server completes those workflows with the same concurrency as a rollout: the ceiling any
// orchestrator on that server shares, which the node rate is compared with.
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createLogger } from '../runtime/log.ts';
import { installTemporalRuntime } from '../workers/temporal-runtime.ts';

/** The baseline's only activity. */
export const trivialActivities = {
  async noop(): Promise<void> {},
};
export type TrivialActivities = typeof trivialActivities;

const TASK_QUEUE = 'slotflow-bench-trivial';
const WORKFLOWS_PATH = fileURLToPath(new URL('./workflows/trivial.ts', import.meta.url));

/** Completes `count` trivial workflows, at most `concurrency` at once; returns workflows per second. */
export async function trivialWorkflowRate({
  address,
  namespace,
  client,
  count,
  concurrency,
}: {
  address: string;
  namespace: string;
  client: Client;
  count: number;
  concurrency: number;
}): Promise<{ perSecond: number; count: number; elapsedMs: number }> {
  const logger = createLogger('bench:temporal');
  if (!process.env['SLOTFLOW_LOG_LEVEL']) logger.level = 'warn';
  installTemporalRuntime(logger);
  const connection = await NativeConnection.connect({ address });
  try {
    const worker = await Worker.create({
      connection,
      namespace,
      taskQueue: TASK_QUEUE,
      workflowsPath: WORKFLOWS_PATH,
      activities: trivialActivities,
    });
    const running = worker.run();
    try {
      const prefix = `bench-trivial-${Date.now()}`;
      let next = 0;
      const lane = async () => {
        while (next < count) {
          const i = next++;
          await client.workflow.execute('trivialWorkflow', {
            workflowId: `${prefix}-${i}`,
            taskQueue: TASK_QUEUE,
          });
        }
      };
      const started = performance.now();
      await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
      const elapsedMs = performance.now() - started;
      return { perSecond: (count / elapsedMs) * 1000, count, elapsedMs: Math.round(elapsedMs) };
    } finally {
      worker.shutdown();
      await running;
    }
  } finally {
    await connection.close();
  }
}
