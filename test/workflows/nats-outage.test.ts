import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { openEventLog, type EventLog } from '../../eventlog/index.ts';
import type { NodeUpgradeInput, nodeUpgradeWorkflow } from '../../workflows/node-upgrade.ts';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.ts';
import { signingLog } from '../helpers/signed-events.ts';
import { activitiesOf } from '../helpers/histories.ts';
import { upgradeEvents } from '../helpers/node-events.ts';
import { startNodeWorkflow, waitForPhase } from '../helpers/node-workflows.ts';

let plane: ControlPlane;
let log: EventLog;
const digest = `sha256:${'b'.repeat(64)}`;

before(async () => {
  plane = await startControlPlane();
  // Node events in these tests come from enrolled nodes, signed.
  log = signingLog(await openEventLog(plane.nc), plane.key);
});
after(() => plane?.stop());

/** Starts one node's upgrade workflow on its own, as a rollout would. */
function startNode(
  rolloutId: string,
  nodeId: string,
  timeouts: NodeUpgradeInput['timeouts'],
): Promise<WorkflowHandle<typeof nodeUpgradeWorkflow>> {
  return startNodeWorkflow(plane.client, { rolloutId, nodeId, digest, timeouts });
}

test('node workflow - with NATS up, a node that stays silent still times out', async () => {
  const handle = await startNode('r-quiet', 'quiet-1', {
    accept: 1_000,
    write: 1_000,
    reboot: 1_000,
    health: 1_000,
  });
  const result = await handle.result();
  assert.equal(result.outcome, 'timed-out');
  assert.match(result.detail ?? '', /no progress within 1000 ms while waiting for the node to accept/);
  const activities = await activitiesOf(handle);
  assert.deepEqual(activities, [
    'sendCommand',
    'checkJetStream',
    'checkPeerFallback',
    'sendCommand',
    'recordEvents',
  ]);
});

test('node workflow - a node that reports its whole upgrade at once, commit first, ends upgraded', async () => {
  const handle = await startNode('r-self', 'self-1', {
    accept: 20_000,
    write: 20_000,
    reboot: 20_000,
    health: 20_000,
  });
  const events = upgradeEvents('r-self', 'self-1', { version: '2.0.0', digest });
  // As a flushed outbox redelivered by the bridge may order them: the terminal event first.
  for (const event of [events.at(-1)!, ...events.slice(0, -1)]) await log.append(event);
  const result = await handle.result();
  assert.deepEqual(result, { nodeId: 'self-1', outcome: 'upgraded', version: '2.0.0' });
});

test('node workflow - phase limits passing while NATS is down keep it waiting; it finishes once NATS is back', async () => {
  const handle = await startNode('r-outage', 'out-1', {
    accept: 10_000,
    write: 1_500,
    reboot: 1_500,
    health: 1_500,
  });
  const [accepted, ...rest] = upgradeEvents('r-outage', 'out-1', { version: '2.0.0', digest });
  await log.append(accepted!);
  await waitForPhase(handle, (p) => p === 'fetching and writing the passive slot');

  await plane.stack.nats.kill();
  const waiting = await waitForPhase(handle, (p) => p.endsWith('(NATS unreachable)'));
  assert.equal(waiting, 'fetching and writing the passive slot (NATS unreachable)');
  await sleep(6_000); // several write limits
  assert.equal((await handle.describe()).status.name, 'RUNNING', 'no timeout while NATS is down');

  await plane.stack.nats.restart();
  for (const event of rest) await log.append(event);
  const result = await handle.result();
  assert.deepEqual(result, { nodeId: 'out-1', outcome: 'upgraded', version: '2.0.0' });
  const activities = await activitiesOf(handle);
  assert.ok(
    activities.filter((a) => a === 'checkJetStream').length >= 2,
    `asked about JetStream on each passing limit: ${activities.join(', ')}`,
  );
  assert.equal(activities.at(-1), 'recordEvents');
});
