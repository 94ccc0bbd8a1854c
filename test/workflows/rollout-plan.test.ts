import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Subscription } from '@nats-io/nats-core';
import { openEventLog, type EventLog } from '../../eventlog/index.ts';
import { startRollout } from '../../cli/rollout-client.ts';
import { EVENTS_STREAM, PLANS_STREAM, planSubject, type RolloutPlan } from '../../schema/index.ts';
import { verifyPlan } from '../../signing/index.ts';
import { createRejectionRecorder, startTrustGate } from '../../trust/index.ts';
import { startSimulatedFleet, type SimulatedFleet, type SimulatedNodeSpec } from '../../simulator/fleet.ts';
import { createLogger } from '../../runtime/log.ts';
import { BRIDGE_CONSUMER, startEventBridge } from '../../workers/event-bridge.ts';
import { commandIdFor, nodeWorkflowId } from '../../workflows/definitions.ts';
import type { NodeUpgradeResult } from '../../workflows/node-upgrade.ts';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.ts';
import { signingLog } from '../helpers/signed-events.ts';
import { upgradeEvents } from '../helpers/node-events.ts';
import { publishImage, waitForStatus } from '../helpers/rollouts.ts';

let plane: ControlPlane;
let log: EventLog;
let raw: EventLog;
let digest: string;
const fleets: SimulatedFleet[] = [];
const subscriptions: Subscription[] = [];

before(async () => {
  plane = await startControlPlane();
  // Node events in these tests come from enrolled nodes, signed.
  raw = await openEventLog(plane.nc);
  log = signingLog(raw, plane.key);
  digest = await publishImage(plane.client, '2.0.0');
});
after(async () => {
  for (const sub of subscriptions) sub.unsubscribe();
  for (const f of fleets) await f.stop();
  await plane?.stop();
});

async function fleet(nodes: SimulatedNodeSpec[]): Promise<SimulatedFleet> {
  const f = await startSimulatedFleet({
    nc: plane.nc,
    trustedKeys: plane.trustedKeys,
    controlPlaneKey: plane.key,
    nodes,
  });
  fleets.push(f);
  return f;
}

/** Every plan published for the rollout from now on, checked against the control plane's key. */
function watchPlans(rolloutId: string): RolloutPlan[] {
  const plans: RolloutPlan[] = [];
  const sub = plane.nc.subscribe(planSubject(rolloutId), {
    callback: (_err, msg) => {
      const verified = verifyPlan(msg.json(), { trustedKeys: plane.trustedKeys });
      assert.ok(verified.ok, `a published plan verifies: ${verified.ok ? '' : verified.message}`);
      plans.push(verified.plan);
    },
  });
  subscriptions.push(sub);
  return plans;
}

/** The plan the stream keeps for the rollout (what an agent that connects now receives). */
async function latestPlan(rolloutId: string): Promise<RolloutPlan> {
  const stored = await log.jsm.streams.getMessage(PLANS_STREAM, { last_by_subj: planSubject(rolloutId) });
  assert.ok(stored, `a plan is stored for ${rolloutId}`);
  const verified = verifyPlan(stored.json(), { trustedKeys: plane.trustedKeys });
  assert.ok(verified.ok, verified.ok ? '' : verified.message);
  return verified.plan;
}

const fast = { accept: '20s', write: '20s', reboot: '15s', health: '10s' };

test('rollout plan - each wave signs a plan up to the next approval; a node that finished on its own counts as upgraded', async () => {
  const f = await fleet([
    { nodeId: 'pp-1', labels: { site: 'pp' } },
    // pp-2 never answers over NATS: it upgrades "peer to peer" and its outbox flushes later.
    { nodeId: 'pp-2', labels: { site: 'pp' }, behavior: 'silent' },
  ]);
  const pp1 = f.identities.get('pp-1')!;
  await raw.append(
    pp1.sign({
      v: 1,
      id: 'pp-1.registered.p2p',
      at: new Date().toISOString(),
      type: 'NodeRegistered',
      nodeId: 'pp-1',
      labels: { site: 'pp' },
      version: '1.0.0',
      activeSlot: 'a',
      agentVersion: 'simulated',
      peerId: '12D3KooWPeerOfPp1',
    }),
  );
  const plans = watchPlans('r-plan');
  const handle = await startRollout(plane.client, {
    id: 'r-plan',
    image: { type: 'published', digest },
    version: '2.0.0',
    selector: 'site=pp',
    waves: '1,100%',
    maxUnavailable: 1,
    failureThreshold: '1',
    approveWaves: true,
    timeouts: fast,
  });

  // pp-2's events arrive while its workflow does not exist yet (its wave waits for approval).
  await waitForStatus(plane.client, 'r-plan', (s) => s.waves.length === 2);
  let lastSeq = 0;
  for (const event of upgradeEvents('r-plan', 'pp-2', { version: '2.0.0', digest })) {
    lastSeq = (await log.append(event)).seq;
  }

  const waiting = await waitForStatus(plane.client, 'r-plan', (s) => s.waitingFor === 'approval');
  assert.equal(waiting.nodes['pp-1']?.state, 'upgraded', 'the held events did not hold back wave 1');
  assert.equal(waiting.plan?.firstWave, 0);
  assert.equal(waiting.plan?.withdrawn, false);

  // While the approval is pending, a cut-off site may finish wave 1 but never start wave 2.
  const first = await latestPlan('r-plan');
  assert.equal(first.firstWave, 0);
  assert.deepEqual(first.waves, [['pp-1']]);
  // Pinned to the peer id of pp-1's enrolled key, not the one its registration announced.
  assert.deepEqual(first.peerIds, { 'pp-1': pp1.identity.peerId });
  assert.equal(first.manifestDigest, digest);
  assert.equal(first.maxUnavailable, 1);
  assert.deepEqual(first.failureThreshold, { type: 'count', count: 1 });
  assert.equal(first.leaseTtlMs, 25_000, 'reboot + health');
  assert.equal(first.startWindowMs, 40_000, 'accept + write');
  assert.equal(first.startsAt, first.issuedAt);
  assert.ok(Date.parse(first.expiresAt) - Date.parse(first.issuedAt) >= 3_600_000, 'lives at least an hour');
  assert.equal(first.upgrade?.manifestDigest, digest);
  assert.equal(first.upgrade?.image.type, 'artifact');
  assert.equal(first.upgrade?.allowDowngrade, false);
  assert.deepEqual(first.upgrade?.healthChecks, []);

  // The bridge holds pp-2's events instead of dropping them.
  const held = await log.jsm.consumers.info(EVENTS_STREAM, BRIDGE_CONSUMER);
  assert.equal(held.config.max_ack_pending, -1, 'held events never cap what the bridge receives');
  assert.ok(held.ack_floor.stream_seq < lastSeq, 'pp-2 events are not acknowledged yet');

  await handle.executeUpdate('approve', { args: [{ by: 'test' }] });
  const result = await handle.result();
  assert.equal(result.status, 'succeeded');
  assert.equal(result.nodes['pp-2']?.state, 'upgraded');
  const node = await plane.client.workflow
    .getHandle(nodeWorkflowId('r-plan', 'pp-2'))
    .result()
    .then((r) => r as NodeUpgradeResult);
  assert.deepEqual(node, { nodeId: 'pp-2', outcome: 'upgraded', version: '2.0.0' });
  assert.equal(f.versions.get('pp-1'), '2.0.0');

  // One plan per wave, then a withdrawal: the ended rollout lets no node start on its own.
  const upgrading = plans.filter((p) => p.upgrade);
  assert.deepEqual(
    upgrading.map((p) => [p.firstWave, p.waves]),
    [
      [0, [['pp-1']]],
      [1, [['pp-2']]],
    ],
  );
  const last = await latestPlan('r-plan');
  assert.equal(last.upgrade, undefined, 'the final plan is withdrawn');
  assert.equal(result.plan?.withdrawn, true);
  assert.ok(plans.every((p, i) => i === 0 || p.issuedAt >= plans[i - 1]!.issuedAt));

  // The Temporal UI shows each plan as a step of the rollout.
  const history = await handle.fetchHistory();
  const summaries = (history.events ?? []).flatMap((e) => {
    const data = e.userMetadata?.summary?.data;
    return e.activityTaskScheduledEventAttributes?.activityType?.name === 'issuePlan' && data
      ? [JSON.parse(new TextDecoder().decode(data)) as string]
      : [];
  });
  assert.deepEqual(summaries, [
    'Sign the peer-to-peer plan: wave 1, 1 node',
    'Sign the peer-to-peer plan: wave 2, 1 node',
    'Withdraw the peer-to-peer plan: rollout succeeded',
  ]);
});

test('rollout plan - after continue-as-new the plan is signed again for the unstarted rest of the wave', async () => {
  const nodes = Array.from({ length: 8 }, (_, i) => ({ nodeId: `cn-${i + 1}`, labels: { site: 'cn' } }));
  await fleet(nodes);
  const plans = watchPlans('r-plan-can');
  const handle = await startRollout(
    plane.client,
    {
      id: 'r-plan-can',
      image: { type: 'published', digest },
      version: '2.0.0',
      selector: 'site=cn',
      waves: '100%',
      maxUnavailable: 2,
      failureThreshold: '3',
      timeouts: fast,
    },
    { historyBudget: 40 },
  );
  const result = await handle.result();
  assert.equal(result.status, 'succeeded');
  assert.ok(result.run > 1, `continued as new (${result.run} runs)`);
  const ids = nodes.map((n) => n.nodeId);
  const upgrading = plans.filter((p) => p.upgrade);
  assert.equal(upgrading.length, result.run, 'one plan per run');
  let previous = ids.length + 1;
  for (const plan of upgrading) {
    assert.equal(plan.firstWave, 0);
    assert.equal(plan.waves.length, 1);
    const rest = plan.waves[0]!;
    assert.deepEqual(rest, ids.slice(ids.length - rest.length), 'the nodes not started yet, in order');
    assert.ok(rest.length < previous, 'each run plans fewer nodes');
    previous = rest.length;
  }
  assert.deepEqual(upgrading[0]?.waves, [ids]);
  assert.equal(plans.at(-1)?.upgrade, undefined, 'withdrawn at the end');
});

test('rollout plan - pausing withdraws the plan; resuming signs it again', async () => {
  await fleet([
    { nodeId: 'pw-1', labels: { site: 'pw' }, behavior: 'fail-health' },
    { nodeId: 'pw-2', labels: { site: 'pw' } },
    { nodeId: 'pw-3', labels: { site: 'pw' } },
  ]);
  const plans = watchPlans('r-plan-pause');
  const handle = await startRollout(plane.client, {
    id: 'r-plan-pause',
    image: { type: 'published', digest },
    version: '2.0.0',
    selector: 'site=pw',
    waves: '1,100%',
    onFailure: 'pause',
    timeouts: fast,
  });
  await waitForStatus(plane.client, 'r-plan-pause', (s) => s.status === 'paused');
  await waitForStatus(plane.client, 'r-plan-pause', (s) => s.plan?.withdrawn === true);
  const withdrawn = await latestPlan('r-plan-pause');
  assert.equal(withdrawn.upgrade, undefined, 'a paused rollout lets no node start on its own');
  await handle.executeUpdate('resume', { args: [{ by: 'test' }] });
  const result = await handle.result();
  assert.equal(result.status, 'succeeded');
  const upgrading = plans.filter((p) => p.upgrade);
  assert.deepEqual(
    upgrading.map((p) => [p.firstWave, p.waves]),
    [
      [0, [['pw-1'], ['pw-2', 'pw-3']]],
      [1, [['pw-2', 'pw-3']]],
    ],
  );
  const pauseIndex = plans.findIndex((p) => !p.upgrade);
  assert.ok(pauseIndex > 0 && pauseIndex < plans.indexOf(upgrading[1]!), 'withdrawn before it resumed');
});

test('event bridge - a consumer made with a cap on pending acks is updated to hold events without one', async () => {
  await log.jsm.consumers.update(EVENTS_STREAM, BRIDGE_CONSUMER, { max_ack_pending: 4096 });
  const logger = createLogger('test:bridge');
  logger.level = 'warn';
  const gate = startTrustGate({
    log,
    trustedKeys: plane.trustedKeys,
    recorder: createRejectionRecorder(undefined, logger),
    logger,
  });
  const bridge = await startEventBridge({ log, client: plane.client, logger, gate });
  await bridge.stop();
  await gate.stop();
  const info = await log.jsm.consumers.info(EVENTS_STREAM, BRIDGE_CONSUMER);
  assert.equal(info.config.max_ack_pending, -1);
  assert.equal(info.config.max_deliver, -1);
});

test('event bridge - an event of a rollout that is not running is dropped, not held', async () => {
  const { seq } = await log.append({
    v: 1,
    id: 'ghost.r-none.accepted',
    at: new Date().toISOString(),
    type: 'UpgradeCommandAccepted',
    nodeId: 'ghost-1',
    rolloutId: 'r-none',
    commandId: commandIdFor('r-none', 'ghost-1', 'upgrade'),
    command: 'Upgrade',
  });
  const deadline = Date.now() + 10_000;
  let floor = 0;
  while (Date.now() < deadline) {
    floor = (await log.jsm.consumers.info(EVENTS_STREAM, BRIDGE_CONSUMER)).ack_floor.stream_seq;
    if (floor >= seq) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(floor >= seq, `the bridge acknowledged seq ${seq} (ack floor ${floor})`);
});
