// One node's upgrade workflow on its own, started as a rollout would start it, and waiting for
// the phase it reports.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { TASK_QUEUE, nodeProgressQuery, nodeWorkflowId } from '../../workflows/definitions.ts';
import type { NodeUpgradeInput, nodeUpgradeWorkflow } from '../../workflows/node-upgrade.ts';

/** Starts one node's upgrade workflow to an OCI image of `digest`, as a rollout would. */
export function startNodeWorkflow(
  client: Client,
  {
    rolloutId,
    nodeId,
    digest,
    timeouts,
  }: {
    rolloutId: string;
    nodeId: string;
    digest: string;
    timeouts: NodeUpgradeInput['timeouts'];
  },
): Promise<WorkflowHandle<typeof nodeUpgradeWorkflow>> {
  return client.workflow.start<typeof nodeUpgradeWorkflow>('nodeUpgradeWorkflow', {
    workflowId: nodeWorkflowId(rolloutId, nodeId),
    taskQueue: TASK_QUEUE,
    args: [
      {
        rolloutId,
        nodeId,
        wave: 0,
        kind: 'upgrade',
        image: { type: 'oci', reference: 'registry.example/os:2.0.0', digest, version: '2.0.0' },
        manifestDigest: digest,
        timeouts,
      },
    ],
  });
}

/** Polls the node workflow's progress query until the predicate holds. */
export async function waitForPhase(
  handle: WorkflowHandle<typeof nodeUpgradeWorkflow>,
  predicate: (phase: string) => boolean,
  timeoutMs = 30_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let phase = '';
  while (Date.now() < deadline) {
    phase = (await handle.query(nodeProgressQuery).catch(() => undefined))?.phase ?? phase;
    if (predicate(phase)) return phase;
    await sleep(150);
  }
  throw new Error(`node workflow ${handle.workflowId} did not reach the expected phase; last: ${phase}`);
}
