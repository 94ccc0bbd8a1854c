// What the VM rollout tests share: a control plane with agent VMs trusting its key, an image
// built from a lab release rootfs by the image build workflow, and waiting for the agents.
import { after } from 'node:test';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { openEventLog } from '../../eventlog/index.ts';
import { startLabFleet, type LabFleet, type LabFleetNode } from '../../lab/fleet.ts';
import { keysDir } from '../../signing/index.ts';
import { acceptWhenPending, localAuthority } from '../../trust/index.ts';
import { TASK_QUEUE } from '../../workflows/definitions.ts';
import type { imageBuildWorkflow } from '../../workflows/image-build.ts';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.ts';
import { tearDown } from '../helpers/teardown.ts';
import { labMissing } from './lab-missing.ts';

/** Builds and publishes the slot image of a rootfs through the image build workflow; its digest. */
export async function publishRootfs(client: Client, rootfs: string, version: string): Promise<string> {
  const result = await client.workflow.execute<typeof imageBuildWorkflow>('imageBuildWorkflow', {
    workflowId: `image/vm-${version}-${Date.now()}`,
    taskQueue: TASK_QUEUE,
    args: [
      { buildId: `vm-${version}`, request: { type: 'rootfs', path: rootfs, format: 'squashfs' }, version },
    ],
  });
  return result.manifest.digest;
}

/** A control plane and agent VMs trusting its key. */
export async function startPlaneAndFleet(
  dir: string,
  nodes: readonly LabFleetNode[],
): Promise<{ plane: ControlPlane; fleet: LabFleet }> {
  const plane = await startControlPlane();
  try {
    const trustedKeyPem = await readFile(join(keysDir(plane.home), 'control-plane.pub'), 'utf8');
    const fleet = await startLabFleet({ dir, natsPort: plane.stack.nats.port, trustedKeyPem, nodes });
    return { plane, fleet };
  } catch (err) {
    await plane.stop();
    throw err;
  }
}

/** The rollout can only target registered nodes: waits until every agent has come up. */
export async function waitForAgents(
  plane: ControlPlane,
  fleet: LabFleet,
  nodes: readonly string[],
): Promise<void> {
  for (const vm of fleet.vms) {
    await vm.waitFor(/"msg":"connected to NATS"/, { timeoutMs: 600_000 });
  }
  // The VMs make their keys on first boot and ask to be enrolled; accept them as an operator would.
  const log = await openEventLog(plane.nc);
  await acceptWhenPending(await localAuthority(plane.nc, log, plane.home, 'lab'), nodes);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const seen = new Set<string>();
    for await (const e of (await openEventLog(plane.nc)).replay()) {
      if (e.event.type === 'NodeRegistered' && 'nodeId' in e.event) seen.add(e.event.nodeId);
    }
    if (nodes.every((n) => seen.has(n))) return;
    if (Date.now() > deadline) throw new Error(`expected ${nodes.join(', ')} registered, saw ${[...seen]}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * A VM test file's work dir, and the control plane and VMs its tests share: started by the first
 * test that asks, stopped and removed after the file's tests. Call it in the file's `describe`.
 */
export async function vmTestBed(prefix: string): Promise<{
  missing: string | undefined;
  dir: string;
  start(nodes: readonly LabFleetNode[]): Promise<{ plane: ControlPlane; fleet: LabFleet }>;
}> {
  const missing = await labMissing();
  const dir = await mkdtemp(join(tmpdir(), prefix));
  let running: { plane: ControlPlane; fleet: LabFleet } | undefined;
  after(async () => {
    await tearDown([
      ['stop the VMs', async () => running?.fleet.stop()],
      ['stop the control plane', async () => running?.plane.stop()],
      ['remove the work dir', () => rm(dir, { recursive: true, force: true })],
    ]);
  });
  return {
    missing,
    dir,
    start: async (nodes) => (running ??= await startPlaneAndFleet(dir, nodes)),
  };
}
