import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { openEventLog } from '../../eventlog/index.ts';
import { catchUp, emptyProjection } from '../../projection/index.ts';
import { startRollout } from '../../cli/rollout-client.ts';
import {
  ImageDigestKey,
  NodeIdKey,
  WaveKey,
  abortUpdate,
  approveUpdate,
  pauseUpdate,
  resumeUpdate,
  TASK_QUEUE,
  rolloutWorkflowId,
  statusQuery,
} from '../../workflows/definitions.ts';
import type { rolloutWorkflow } from '../../workflows/rollout.ts';
import type { LegacyRolloutState } from '../../workflows/rollout-state.ts';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.ts';
import { checkRolloutSends } from '../helpers/histories.ts';
import { makeRootfs, publishImage, rolloutEvents, waitForStatus } from '../helpers/rollouts.ts';
import { startSimulatedFleet, type SimulatedFleet, type SimulatedNodeSpec } from '../../simulator/fleet.ts';

let plane: ControlPlane;
let digest: string;
const fleets: SimulatedFleet[] = [];

before(async () => {
  plane = await startControlPlane();
  digest = await publishImage(plane.client, '2.0.0');
});
after(async () => {
  for (const f of fleets) await f.stop();
  await plane?.stop();
});

async function fleet(
  site: string,
  count: number,
  behaviors: Record<number, SimulatedNodeSpec['behavior']> = {},
  stepDelayMs = 5,
) {
  const nodes = Array.from({ length: count }, (_, i) => ({
    nodeId: `${site}-${i + 1}`,
    labels: { site },
    behavior: behaviors[i] ?? 'ok',
  }));
  const f = await startSimulatedFleet({
    nc: plane.nc,
    trustedKeys: plane.trustedKeys,
    controlPlaneKey: plane.key,
    nodes,
    stepDelayMs,
  });
  fleets.push(f);
  return f;
}

const fast = { accept: '20s', write: '20s', reboot: '20s', health: '20s' };

test('rollout - three waves over six nodes complete, each node upgraded once, events in causal order', async () => {
  const f = await fleet('alpha', 6);
  const handle = await startRollout(plane.client, {
    id: 'r-waves',
    image: { type: 'rootfs', path: await makeRootfs('2.1.0') },
    version: '2.1.0',
    selector: 'site=alpha',
    waves: '1,50%,100%',
    maxUnavailable: 2,
    timeouts: fast,
  });
  const result = await handle.result();
  assert.equal(result.status, 'succeeded');
  assert.deepEqual(
    result.waves.map((w) => w.nodeIds.length),
    [1, 2, 3],
  );
  assert.equal(result.counts.upgraded, 6);
  // Sent commands are counted in the histories: the stream and the nodes would drop a re-sent one.
  const { sent } = await checkRolloutSends(plane.client, plane.nc, 'r-waves');
  assert.equal(sent.size, 6);
  for (const [nodeId, commands] of f.received) {
    assert.deepEqual(sent.get(nodeId), ['Upgrade'], `the workflows sent ${nodeId} one command`);
    assert.equal(commands.length, 1, `${nodeId} received ${commands.length} commands`);
    assert.equal(f.versions.get(nodeId), '2.1.0');
  }

  const events = await rolloutEvents(plane.nc, 'r-waves');
  const types = events
    .filter((e) => !('nodeId' in e.event) || e.event.type === 'NodeUpgradeFinished')
    .map((e) => e.event.type);
  const order = ['RolloutStarted', 'ImageBuilt', 'ImagePublished', 'TargetsResolved', 'WaveStarted'];
  assert.deepEqual(types.slice(0, order.length), order);
  assert.equal(types.at(-1), 'RolloutCompleted');
  // Causal order: a wave starts after the previous wave's gate, and every node event of a wave
  // falls between its WaveStarted and its WaveGatePassed.
  const seqOf = (type: string, wave: number) =>
    events.find((e) => e.event.type === type && 'wave' in e.event && e.event.wave === wave)?.seq ?? -1;
  for (let w = 0; w < 3; w++) {
    const start = seqOf('WaveStarted', w);
    const gate = seqOf('WaveGatePassed', w);
    assert.ok(start > 0 && gate > start, `wave ${w} started and passed`);
    if (w > 0) assert.ok(start > seqOf('WaveGatePassed', w - 1));
    for (const nodeId of result.waves[w]?.nodeIds ?? []) {
      const nodeEvents = events.filter((e) => 'nodeId' in e.event && e.event.nodeId === nodeId);
      assert.ok(
        nodeEvents.every((e) => e.seq > start && e.seq < gate),
        `${nodeId}'s events lie inside wave ${w}`,
      );
      const committed = nodeEvents.findIndex((e) => e.event.type === 'UpgradeCommitted');
      const accepted = nodeEvents.findIndex((e) => e.event.type === 'UpgradeCommandAccepted');
      assert.ok(accepted >= 0 && committed > accepted);
    }
  }

  // The workflow's status and the projection built from the events agree.
  const projection = await catchUp(emptyProjection(), await openEventLog(plane.nc), {
    trustedKeys: plane.trustedKeys,
  });
  const view = projection.rollouts.get('r-waves');
  assert.equal(view?.status, 'succeeded');
  for (const [nodeId, node] of Object.entries(result.nodes)) {
    assert.equal(view?.nodes[nodeId]?.outcome, node.state);
    assert.equal(projection.nodes.get(nodeId)?.version, '2.1.0');
  }
  assert.equal(view?.upgraded, result.counts.upgraded);

  // The Temporal UI's filter RolloutId="r-waves" lists the rollout, its build and every node workflow.
  let ids: string[] = [];
  for (let i = 0; i < 50 && ids.length < 8; i++) {
    ids = [];
    for await (const wf of plane.client.workflow.list({ query: 'RolloutId="r-waves"' }))
      ids.push(wf.workflowId);
    if (ids.length < 8) await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual(ids.sort(), [
    'image/r-waves',
    'node/r-waves/alpha-1',
    'node/r-waves/alpha-2',
    'node/r-waves/alpha-3',
    'node/r-waves/alpha-4',
    'node/r-waves/alpha-5',
    'node/r-waves/alpha-6',
    'rollout/r-waves',
  ]);
  const described = await plane.client.workflow.getHandle('node/r-waves/alpha-3').describe();
  assert.equal(described.typedSearchAttributes.get(NodeIdKey), 'alpha-3');
  assert.equal(typeof described.typedSearchAttributes.get(WaveKey), 'number');
  assert.equal(described.typedSearchAttributes.get(ImageDigestKey), result.imageDigest);
});

test('rollout - a long rollout continues as new and still finishes every node once', async () => {
  const f = await fleet('zeta', 8);
  const handle = await startRollout(
    plane.client,
    {
      id: 'r-can',
      image: { type: 'published', digest },
      version: '2.0.0',
      selector: 'site=zeta',
      waves: '2,100%',
      maxUnavailable: 2,
      timeouts: fast,
    },
    { historyBudget: 40 },
  );
  const result = await handle.result();
  assert.equal(result.status, 'succeeded');
  assert.ok(result.run > 1, `continued as new (${result.run} runs)`);
  assert.equal(result.counts.upgraded, 8);
  for (const commands of f.received.values()) assert.equal(commands.length, 1);
  // Across runs: an event id recorded again by a later run would be dropped by the stream, so the
  // histories are what show each id recorded once (and every one stored).
  const { runs, sent } = await checkRolloutSends(plane.client, plane.nc, 'r-can');
  assert.ok(runs.filter((r) => r.workflowType === 'rolloutWorkflow').length > 1, 'every run was read');
  assert.deepEqual(
    [...sent].sort(),
    [...f.received.keys()].map((nodeId) => [nodeId, ['Upgrade']]).sort(),
    'one command sent per node across runs',
  );
});

test('rollout - a failing canary with on-failure rollback ends rolled-back, touched nodes back on the old version', async () => {
  const f = await fleet('beta', 4, { 1: 'fail-health' });
  const handle = await startRollout(plane.client, {
    id: 'r-rollback',
    image: { type: 'published', digest },
    version: '2.0.0',
    selector: 'site=beta',
    waves: '2,100%',
    maxUnavailable: 1,
    onFailure: 'rollback',
    timeouts: fast,
  });
  const result = await handle.result();
  assert.equal(result.status, 'rolled-back');
  assert.equal(result.nodes['beta-1']?.state, 'rolled-back');
  assert.equal(result.nodes['beta-2']?.state, 'fell-back');
  assert.equal(result.nodes['beta-3']?.state, 'pending', 'the second wave never started');
  for (const nodeId of ['beta-1', 'beta-2', 'beta-3', 'beta-4'])
    assert.equal(f.versions.get(nodeId), '1.0.0');
  assert.deepEqual(
    f.received.get('beta-1')?.map((c) => c.type),
    ['Upgrade', 'Rollback'],
  );
  const { sent } = await checkRolloutSends(plane.client, plane.nc, 'r-rollback');
  assert.deepEqual(sent.get('beta-1'), ['Upgrade', 'Rollback'], 'beta-1: one upgrade, one rollback sent');
  assert.deepEqual(sent.get('beta-2'), ['Upgrade'], 'beta-2 fell back on its own: nothing more sent');
  assert.deepEqual([...sent.keys()].sort(), ['beta-1', 'beta-2'], 'the second wave was sent nothing');
  const types = (await rolloutEvents(plane.nc, 'r-rollback')).map((e) => e.event.type);
  assert.ok(types.indexOf('WaveGateFailed') < types.indexOf('RolloutRolledBack'));
  assert.equal(types.at(-1), 'RolloutCompleted');
});

test('rollout - with on-failure pause it waits; resume continues, and a second breach can be aborted', async () => {
  await fleet('gamma', 5, { 0: 'fail-health', 2: 'fail-health' });
  const handle = await startRollout(plane.client, {
    id: 'r-pause',
    image: { type: 'published', digest },
    version: '2.0.0',
    selector: 'site=gamma',
    waves: '1,40%,100%',
    maxUnavailable: 1,
    onFailure: 'pause',
    timeouts: fast,
  });
  const paused = await waitForStatus(plane.client, 'r-pause', (s) => s.status === 'paused');
  assert.equal(paused.waitingFor, 'resume');
  assert.match(paused.pauseReason ?? '', /failure threshold/);
  assert.equal(paused.nodes['gamma-2']?.state, 'pending', 'nothing new starts while paused');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await handle.query(statusQuery)).nodes['gamma-2']?.state, 'pending');

  await handle.executeUpdate(resumeUpdate, { args: [{ by: 'test' }] });
  const pausedAgain = await waitForStatus(
    plane.client,
    'r-pause',
    (s) => s.status === 'paused' && s.nodes['gamma-3']?.state === 'fell-back',
  );
  assert.equal(pausedAgain.nodes['gamma-2']?.state, 'upgraded');
  await handle.executeUpdate(abortUpdate, { args: [{ by: 'test', reason: 'giving up' }] });
  const result = await handle.result();
  assert.equal(result.status, 'aborted');
  const types: string[] = (await rolloutEvents(plane.nc, 'r-pause')).map((e) => e.event.type);
  for (const t of ['RolloutPaused', 'RolloutResumed', 'RolloutAborted', 'RolloutCompleted'])
    assert.ok(types.includes(t), t);
});

test('rollout - the approval gate holds until approve; meaningless requests are refused with a reason', async () => {
  await fleet('delta', 3);
  const handle = await startRollout(plane.client, {
    id: 'r-approve',
    image: { type: 'published', digest },
    version: '2.0.0',
    selector: 'site=delta',
    waves: '1,100%',
    approveWaves: true,
    timeouts: fast,
  });
  await assert.rejects(handle.executeUpdate(resumeUpdate, { args: [{}] }), (err: unknown) => {
    assert.ok(err instanceof WorkflowUpdateFailedError);
    assert.match(String((err.cause as Error)?.message), /not paused/);
    return true;
  });
  const waiting = await waitForStatus(plane.client, 'r-approve', (s) => s.waitingFor === 'approval');
  assert.equal(waiting.nodes['delta-2']?.state, 'pending');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await handle.query(statusQuery)).nodes['delta-2']?.state, 'pending', 'the gate holds');
  await handle.executeUpdate(approveUpdate, { args: [{ by: 'operator-1' }] });
  const result = await handle.result();
  assert.equal(result.status, 'succeeded');
  await assert.rejects(
    plane.client.workflow
      .getHandle(rolloutWorkflowId('r-approve'))
      .executeUpdate(approveUpdate, { args: [{}] }),
  );
  const approved = (await rolloutEvents(plane.nc, 'r-approve')).find((e) => e.event.type === 'WaveApproved');
  assert.equal(approved?.event.type === 'WaveApproved' && approved.event.by, 'operator-1');
});

test('rollout - a run continued from the older whole-view carried state goes on where it was', async () => {
  const f = await fleet('eta', 3);
  const pinned = `sha256:${'e'.repeat(64)}`;
  const spec = {
    id: 'r-legacy',
    image: { type: 'oci' as const, reference: `registry.example/os:2.0.0@${pinned}` },
    version: '2.0.0',
    selector: 'site=eta',
    waves: '1,100%',
    maxUnavailable: 2,
    timeouts: fast,
  };
  // What a run of the previous shape carried after its canary wave: the whole view and the targets.
  const carried: LegacyRolloutState = {
    view: {
      rolloutId: 'r-legacy',
      status: 'running',
      version: '2.0.0',
      imageDigest: pinned,
      currentWave: 0,
      waves: [
        { index: 0, nodeIds: ['eta-1'], status: 'passed', succeeded: 1, failed: 0 },
        { index: 1, nodeIds: ['eta-2', 'eta-3'], status: 'pending', succeeded: 0, failed: 0 },
      ],
      nodes: {
        'eta-1': { wave: 0, state: 'upgraded' },
        'eta-2': { wave: 1, state: 'pending' },
        'eta-3': { wave: 1, state: 'pending' },
      },
      counts: { targets: 3, upgraded: 1, failed: 0, running: 0, pending: 2, skipped: 0 },
      skipped: [],
      run: 1,
    },
    eventCounter: 7,
    image: { type: 'oci', reference: spec.image.reference, digest: pinned, version: '2.0.0' },
    manifestDigest: pinned,
    targets: ['eta-1', 'eta-2', 'eta-3'].map((nodeId) => ({ nodeId, version: '1.0.0' })),
    waves: [['eta-1'], ['eta-2', 'eta-3']],
    waveIndex: 1,
    waveStarted: false,
    waveGatePassed: false,
    failureBaseline: 0,
    touched: ['eta-1'],
    control: 'run',
    request: { by: 'policy', reason: '' },
    approved: false,
  };
  const handle = await plane.client.workflow.start<typeof rolloutWorkflow>('rolloutWorkflow', {
    workflowId: rolloutWorkflowId('r-legacy'),
    taskQueue: TASK_QUEUE,
    args: [{ spec, carried }],
  });
  const result = await handle.result();
  assert.equal(result.status, 'succeeded');
  assert.deepEqual(
    result.waves.map((w) => [w.status, w.nodeIds, w.succeeded]),
    [
      ['passed', ['eta-1'], 1],
      ['passed', ['eta-2', 'eta-3'], 2],
    ],
  );
  assert.deepEqual(result.counts, { targets: 3, upgraded: 3, failed: 0, running: 0, pending: 0, skipped: 0 });
  assert.deepEqual(f.received.get('eta-1') ?? [], [], 'the canary is not upgraded again');
  const { sent } = await checkRolloutSends(plane.client, plane.nc, 'r-legacy');
  assert.deepEqual([...sent].sort(), [
    ['eta-2', ['Upgrade']],
    ['eta-3', ['Upgrade']],
  ]);
  assert.equal(f.versions.get('eta-3'), '2.0.0');
  const own = (await rolloutEvents(plane.nc, 'r-legacy'))
    .map((e) => e.event.id)
    .filter((id) => /^r-legacy:\d+$/.test(id));
  assert.deepEqual(
    own,
    ['r-legacy:8', 'r-legacy:9', 'r-legacy:10'],
    'event ids go on from the carried counter',
  );
});

test('rollout - pause mid-wave lets running nodes finish and starts no new one until resume', async () => {
  await fleet('eps', 6, {}, 150);
  const handle = await startRollout(plane.client, {
    id: 'r-midwave',
    image: { type: 'published', digest },
    version: '2.0.0',
    selector: 'site=eps',
    waves: '100%',
    maxUnavailable: 2,
    timeouts: fast,
  });
  await waitForStatus(plane.client, 'r-midwave', (s) => s.counts.running > 0);
  await handle.executeUpdate(pauseUpdate, { args: [{ by: 'test', reason: 'lunch' }] });
  const paused = await waitForStatus(
    plane.client,
    'r-midwave',
    (s) => s.status === 'paused' && s.counts.running === 0,
  );
  const done = paused.counts.upgraded;
  assert.ok(done >= 1 && done < 6, `some but not all nodes finished (${done})`);
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal((await handle.query(statusQuery)).counts.upgraded, done, 'nothing started while paused');
  await handle.executeUpdate(resumeUpdate, { args: [{ by: 'test' }] });
  const result = await handle.result();
  assert.equal(result.status, 'succeeded');
  assert.equal(result.counts.upgraded, 6);
  const { sent } = await checkRolloutSends(plane.client, plane.nc, 'r-midwave');
  assert.equal(sent.size, 6);
  for (const [nodeId, commands] of sent)
    assert.deepEqual(commands, ['Upgrade'], `${nodeId}: one command across pause and resume`);
});

test('rollout - a bad spec is refused before anything starts, naming the field', async () => {
  await assert.rejects(
    startRollout(plane.client, {
      id: 'r-bad',
      image: { type: 'published', digest },
      version: '2.0.0',
      waves: '10%,5%',
    }),
    /waves: expected percentages to grow/,
  );
});
