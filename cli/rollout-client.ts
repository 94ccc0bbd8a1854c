import { WorkflowIdReusePolicy, type Client, type WorkflowHandle } from '@temporalio/client';
import {
  RolloutSpec,
  formatDuration,
  formatWaves,
  parseWith,
  type RolloutSpecInput,
} from '../schema/index.ts';
import {
  RolloutIdKey,
  TASK_QUEUE,
  rolloutWorkflowId,
  statusQuery,
  type RolloutStatusView,
} from '../workflows/definitions.ts';
import type { rolloutWorkflow } from '../workflows/rollout.ts';

/** Validates a rollout spec (naming every bad field) and starts its workflow. */
export async function startRollout(
  client: Client,
  input: RolloutSpecInput,
  options: { historyBudget?: number } = {},
): Promise<WorkflowHandle<typeof rolloutWorkflow>> {
  const spec = parseWith(RolloutSpec, input, 'rollout spec');
  const image =
    spec.image.type === 'oci'
      ? spec.image.reference
      : spec.image.type === 'published'
        ? spec.image.digest
        : `${spec.image.type} ${spec.image.path}`;
  const threshold =
    spec.failureThreshold.type === 'count'
      ? String(spec.failureThreshold.count)
      : `${spec.failureThreshold.percent}%`;
  return client.workflow.start<typeof rolloutWorkflow>('rolloutWorkflow', {
    workflowId: rolloutWorkflowId(spec.id),
    taskQueue: TASK_QUEUE,
    args: [{ spec: input, ...(options.historyBudget ? { historyBudget: options.historyBudget } : {}) }],
    workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    typedSearchAttributes: [{ key: RolloutIdKey, value: spec.id }],
    memo: {
      image,
      version: spec.version,
      waves: formatWaves(spec.waves),
      maxUnavailable: spec.maxUnavailable,
      failurePolicy: `${threshold} then ${spec.onFailure}`,
      soak: formatDuration(spec.soak),
      approveWaves: spec.approveWaves,
    },
    staticSummary: `Roll out ${spec.version} (waves ${formatWaves(spec.waves)}, ${spec.maxUnavailable} at a time, on failure ${spec.onFailure})`,
  });
}

/** The rollout's current status from its workflow. */
export async function rolloutStatus(client: Client, rolloutId: string): Promise<RolloutStatusView> {
  return client.workflow.getHandle(rolloutWorkflowId(rolloutId)).query(statusQuery);
}
