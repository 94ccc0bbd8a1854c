// A site cut off from the control plane while the worker still reaches NATS: the silence of a
// node that can go on peer to peer is no verdict while the rollout's plan lists it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { startRollout } from '../../cli/rollout-client.ts';
import { openEventLog, type EventLog } from '../../eventlog/index.ts';
import { nodeProgressQuery, nodeWorkflowId } from '../../workflows/definitions.ts';
import type { NodeUpgradeResult } from '../../workflows/node-upgrade.ts';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.ts';
import { signingLog } from '../helpers/signed-events.ts';
import { activitiesOf } from '../helpers/histories.ts';
import { upgradeEvents } from '../helpers/node-events.ts';
import { waitForStatus } from '../helpers/rollouts.ts';

let plane: ControlPlane;
let log: EventLog;
const digest = `sha256:${'c'.repeat(64)}`;
const image = { type: 'oci' as const, reference: `registry.example/os:2.0.0@${digest}` };
const quick = { accept: '2s', write: '2s', reboot: '2s', health: '2s' };
const UNREACHABLE = 'waiting for the node to accept (node unreachable; it may be finishing peer to peer)';

before(async () => {
  plane = await startControlPlane();
  // Node events in these tests come from enrolled nodes, signed.
  log = signingLog(await openEventLog(plane.nc), plane.key);
});
after(() => plane?.stop());

/** A node's registration as its agent publishes it, `silentForMs` ago (nothing heard from it since). */
async function register(
  nodeId: string,
  site: string,
  { peerId, silentForMs }: { peerId?: string; silentForMs: number },
): Promise<void> {
  await log.append({
    v: 1,
    id: `${nodeId}.registered`,
    at: new Date(Date.now() - silentForMs).toISOString(),
    type: 'NodeRegistered',
    nodeId,
    labels: { site },
    version: '1.0.0',
    activeSlot: 'a',
    agentVersion: 'simulated',
    ...(peerId ? { peerId } : {}),
  });
}

function nodeHandle(rolloutId: string, nodeId: string): WorkflowHandle {
  return plane.client.workflow.getHandle(nodeWorkflowId(rolloutId, nodeId));
}

/** Polls a node workflow's progress until its phase is the expected one. */
async function waitForPhase(
  rolloutId: string,
  nodeId: string,
  phase: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last =
      (
        await nodeHandle(rolloutId, nodeId)
          .query(nodeProgressQuery)
          .catch(() => undefined)
      )?.phase ?? last;
    if (last === phase) return;
    await sleep(150);
  }
  throw new Error(`${nodeId} did not reach "${phase}"; last: "${last}"`);
}

test('peer fallback - a silent peer-to-peer node listed in the plan is waited for and ends upgraded; others time out', async () => {
  const minutes = 5 * 60_000;
  // cut-1 can go on peer to peer and has been silent for minutes: its site lost the control plane.
  await register('cut-1', 'cut', { peerId: '12D3KooWCutOne', silentForMs: minutes });
  // cut-2 is as silent but runs no libp2p peer: nothing can finish it.
  await register('cut-2', 'cut', { silentForMs: minutes });
  // cut-3 could go on peer to peer but was heard from just now: its silence is its own.
  await register('cut-3', 'cut', { peerId: '12D3KooWCutThree', silentForMs: 0 });

  const handle = await startRollout(plane.client, {
    id: 'r-cut',
    image,
    version: '2.0.0',
    selector: 'site=cut',
    waves: '100%',
    maxUnavailable: 3,
    failureThreshold: '2',
    timeouts: quick,
  });
  await waitForPhase('r-cut', 'cut-1', UNREACHABLE);

  const timedOut = async (nodeId: string) => {
    const result = (await nodeHandle('r-cut', nodeId).result()) as NodeUpgradeResult;
    assert.equal(result.outcome, 'timed-out', `${nodeId}: ${JSON.stringify(result)}`);
    assert.match(result.detail ?? '', /no progress within 2000 ms while waiting for the node to accept/);
  };
  await timedOut('cut-2');
  await timedOut('cut-3');
  assert.deepEqual(await activitiesOf(nodeHandle('r-cut', 'cut-2')), [
    'sendCommand',
    'checkJetStream',
    'checkPeerFallback',
    'sendCommand',
    'recordEvents',
  ]);

  await sleep(5_000); // more than two accept limits
  assert.equal(
    (await nodeHandle('r-cut', 'cut-1').describe()).status.name,
    'RUNNING',
    'no timeout while planned',
  );
  const waiting = await waitForStatus(plane.client, 'r-cut', (s) => s.counts.failed === 2);
  assert.equal(waiting.nodes['cut-1']?.state, 'running');
  assert.equal(waiting.plan?.withdrawn, false);

  // The site reconnects: cut-1's outbox flushes the upgrade it did under the plan.
  for (const event of upgradeEvents('r-cut', 'cut-1', { version: '2.0.0', digest })) await log.append(event);
  const node = (await nodeHandle('r-cut', 'cut-1').result()) as NodeUpgradeResult;
  assert.deepEqual(node, { nodeId: 'cut-1', outcome: 'upgraded', version: '2.0.0' });

  const result = await handle.result();
  assert.equal(result.status, 'succeeded');
  assert.deepEqual(Object.fromEntries(Object.entries(result.nodes).map(([id, n]) => [id, n.state])), {
    'cut-1': 'upgraded',
    'cut-2': 'timed-out',
    'cut-3': 'timed-out',
  });
  assert.equal(result.counts.upgraded, 1);
  assert.equal(result.counts.failed, 2);
});

test('peer fallback - pausing withdraws the plan at once, and a node waiting on it then times out', async () => {
  await register('gone-1', 'gone', { peerId: '12D3KooWGoneOne', silentForMs: 5 * 60_000 });
  const handle = await startRollout(plane.client, {
    id: 'r-gone',
    image,
    version: '2.0.0',
    selector: 'site=gone',
    waves: '100%',
    timeouts: quick,
  });
  await waitForPhase('r-gone', 'gone-1', UNREACHABLE);
  await handle.executeUpdate('pause', { args: [{ by: 'test', reason: 'site maintenance' }] });

  const node = (await nodeHandle('r-gone', 'gone-1').result()) as NodeUpgradeResult;
  assert.equal(node.outcome, 'timed-out', 'no plan lists it any more');
  const paused = await waitForStatus(plane.client, 'r-gone', (s) => s.status === 'paused');
  assert.equal(paused.plan?.withdrawn, true);
  assert.equal(paused.nodes['gone-1']?.state, 'timed-out');

  // The withdrawal went out while the node was still in flight, not after it ended.
  const history = await handle.fetchHistory();
  const events = history.events ?? [];
  const withdrawal = events.findIndex((e) => {
    const data = e.userMetadata?.summary?.data;
    return (
      e.activityTaskScheduledEventAttributes?.activityType?.name === 'issuePlan' &&
      data !== undefined &&
      (JSON.parse(new TextDecoder().decode(data)) as string).startsWith('Withdraw')
    );
  });
  const nodeEnded = events.findIndex((e) => e.childWorkflowExecutionCompletedEventAttributes);
  assert.ok(
    withdrawal > 0 && withdrawal < nodeEnded,
    `withdrawn (event ${withdrawal}) before the node ended (${nodeEnded})`,
  );

  await handle.executeUpdate('abort', { args: [{ by: 'test' }] });
  assert.equal((await handle.result()).status, 'aborted');
});
