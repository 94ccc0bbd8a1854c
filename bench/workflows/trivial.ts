// The baseline the orchestrator's node rate is compared with: one workflow, one activity, nothing
// else. Bundled only into the bench's own worker (bench/trivial-worker.ts), never the product's.
import { proxyActivities } from '@temporalio/workflow';
import type { TrivialActivities } from '../trivial-worker.ts';

const { noop } = proxyActivities<TrivialActivities>({ startToCloseTimeout: '30s' });

/** Runs one no-op activity and returns. */
export async function trivialWorkflow(): Promise<void> {
  await noop();
}
