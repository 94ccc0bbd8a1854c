import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startRollout } from '../../cli/rollout-client.ts';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.ts';
import { checkRolloutSends, eventsRecorded } from '../helpers/histories.ts';
import { publishImage, rolloutEvents, waitForStatus } from '../helpers/rollouts.ts';
import { startSimulatedFleet, type SimulatedFleet } from '../../simulator/fleet.ts';

const SLOTFLOW = fileURLToPath(new URL('../../bin/slotflow', import.meta.url));
let plane: ControlPlane;
let fleet: SimulatedFleet | undefined;
const workers = new Set<ChildProcess>();

/** `slotflow worker` as its own process, so the test can SIGKILL it. */
async function spawnWorker(): Promise<ChildProcess> {
  const child = spawn(SLOTFLOW, ['worker'], {
    env: { ...process.env, ...plane.env, SLOTFLOW_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  workers.add(child);
  child.once('exit', () => workers.delete(child));
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.once('exit', (code, signal) => {
    if (code && code !== 0) process.stderr.write(`worker exited ${code} ${signal}: ${stderr}\n`);
  });
  return child;
}

before(async () => {
  plane = await startControlPlane({ worker: false });
});
after(async () => {
  for (const w of workers) w.kill('SIGKILL');
  await fleet?.stop();
  await plane?.stop();
});

test('worker crash - SIGKILL mid-wave and a restart: the rollout completes and no node gets a step twice', async () => {
  let worker = await spawnWorker();
  // The build waits on the task queue until the fresh worker has bundled its workflows.
  const digest = await publishImage(plane.client, '2.0.0');
  const nodes = Array.from({ length: 8 }, (_, i) => ({
    nodeId: `crash-${i + 1}`,
    labels: { site: 'crash' },
  }));
  const f = await startSimulatedFleet({
    nc: plane.nc,
    trustedKeys: plane.trustedKeys,
    controlPlaneKey: plane.key,
    nodes,
    stepDelayMs: 120,
  });
  fleet = f;
  const handle = await startRollout(plane.client, {
    id: 'r-crash',
    image: { type: 'published', digest },
    version: '2.0.0',
    selector: 'site=crash',
    waves: '2,100%',
    maxUnavailable: 3,
    timeouts: { accept: '30s', write: '30s', reboot: '30s', health: '30s' },
  });
  // Kill the worker while the second wave has nodes in flight.
  await waitForStatus(plane.client, 'r-crash', (s) => s.currentWave === 1 && s.counts.running > 0, 90_000);
  worker.kill('SIGKILL');
  await new Promise((resolve) => worker.once('exit', resolve));
  await new Promise((r) => setTimeout(r, 1500)); // nodes keep reporting while no worker runs
  worker = await spawnWorker();

  const result = await handle.result();
  assert.equal(result.status, 'succeeded');
  assert.equal(result.counts.upgraded, 8);
  // Counted where the workflows decided to send or record, not where they arrived: the command
  // stream drops a re-sent command id, the nodes refuse a replayed one, and the event stream drops
  // a re-recorded event id, so a replay that repeated a step would not show downstream.
  const { runs, sent } = await checkRolloutSends(plane.client, plane.nc, 'r-crash');
  assert.deepEqual([...sent.keys()].sort(), [...f.received.keys()].sort(), 'every node was sent a command');
  for (const [nodeId, commands] of f.received) {
    assert.deepEqual(sent.get(nodeId), ['Upgrade'], `the workflows sent ${nodeId} exactly one command`);
    assert.deepEqual(
      commands.map((c) => c.type),
      ['Upgrade'],
      `${nodeId} got exactly one command`,
    );
    const steps: string[] = f.steps.get(commands[0]!.commandId) ?? [];
    assert.equal(new Set(steps).size, steps.length, `${nodeId} performed no step twice: ${steps.join(',')}`);
  }
  const finished = eventsRecorded(runs).filter((e) => e.type === 'NodeUpgradeFinished');
  assert.equal(finished.length, 8, 'one NodeUpgradeFinished recorded per node');
  assert.equal(
    (await rolloutEvents(plane.nc, 'r-crash')).filter((e) => e.event.type === 'NodeUpgradeFinished').length,
    8,
    'one NodeUpgradeFinished stored per node',
  );
});
