// Shared steps of rollout tests: a published image, waiting for states, reading events.
import { mkdir, mkdtemp, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { openEventLog } from '../../eventlog/index.ts';
import type { NatsConnection } from '@nats-io/nats-core';
import type { DomainEvent } from '../../schema/index.ts';
import {
  TASK_QUEUE,
  rolloutWorkflowId,
  statusQuery,
  type RolloutStatusView,
} from '../../workflows/definitions.ts';
import type { imageBuildWorkflow } from '../../workflows/image-build.ts';

/** A small root filesystem for a version. */
export async function makeRootfs(version: string, bytes = 256 * 1024): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'slotflow-rootfs-'));
  await mkdir(join(root, 'etc'));
  await writeFile(join(root, 'etc/os-release'), `NAME=slotflow-test\nVERSION=${version}\n`);
  await writeFile(join(root, 'etc/payload'), Buffer.alloc(bytes, version.length));
  for (const p of ['etc/os-release', 'etc/payload', 'etc', '.'])
    await utimes(join(root, p), 1_700_000_000, 1_700_000_000);
  return root;
}

/** Builds and publishes an image through the worker; returns its digest. */
export async function publishImage(client: Client, version: string): Promise<string> {
  const result = await client.workflow.execute<typeof imageBuildWorkflow>('imageBuildWorkflow', {
    workflowId: `image/test-${version}-${Date.now()}`,
    taskQueue: TASK_QUEUE,
    args: [
      {
        buildId: `test-${version}`,
        request: { type: 'rootfs', path: await makeRootfs(version), format: 'ext4' },
        version,
      },
    ],
  });
  return result.manifest.digest;
}

/** Polls the rollout's status query until the predicate holds (or fails after the timeout). */
export async function waitForStatus(
  client: Client,
  rolloutId: string,
  predicate: (s: RolloutStatusView) => boolean,
  timeoutMs = 60_000,
): Promise<RolloutStatusView> {
  const handle = client.workflow.getHandle(rolloutWorkflowId(rolloutId));
  const deadline = Date.now() + timeoutMs;
  let last: RolloutStatusView | undefined;
  while (Date.now() < deadline) {
    try {
      last = await handle.query(statusQuery);
      if (predicate(last)) return last;
    } catch {
      // not started yet, or a worker is restarting
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(
    `rollout ${rolloutId} did not reach the expected state in ${timeoutMs} ms; last: ${JSON.stringify(last)}`,
  );
}

/** All events of a rollout (its own and its nodes'), in stream order. */
export async function rolloutEvents(
  nc: NatsConnection,
  rolloutId: string,
): Promise<{ seq: number; event: DomainEvent }[]> {
  const log = await openEventLog(nc);
  const out: { seq: number; event: DomainEvent }[] = [];
  for await (const e of log.replay()) {
    if ('rolloutId' in e.event && e.event.rolloutId === rolloutId) out.push(e);
  }
  return out;
}
