// Records the Temporal histories that test/workflows/replay.test.ts replays against the current
// workflow code: representative rollouts run on a real Temporal dev server and nats-server with
// an in-process worker and simulated nodes, each written with every run and child workflow to
// test/fixtures/histories/<scenario>.json.
//
//   npm run record-histories                  # every scenario
//   npm run record-histories -- rollback      # only the named ones
import { mkdir, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRollout } from '../../cli/rollout-client.ts';
import { openEventLog } from '../../eventlog/index.ts';
import { startSimulatedFleet, type SimulatedNodeSpec } from '../../simulator/fleet.ts';
import { approveUpdate, nodeWorkflowId, resumeUpdate } from '../../workflows/definitions.ts';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.ts';
import { signingLog } from '../helpers/signed-events.ts';
import {
  HISTORIES_DIR,
  historyToObject,
  rolloutHistories,
  workflowTree,
  type HistoryFixture,
  type RecordedRun,
} from '../helpers/histories.ts';
import { upgradeEvents } from '../helpers/node-events.ts';
import { startNodeWorkflow, waitForPhase } from '../helpers/node-workflows.ts';
import { makeRootfs, publishImage, waitForStatus } from '../helpers/rollouts.ts';

interface Scenario {
  readonly description: string;
  run(plane: ControlPlane, digest: string): Promise<RecordedRun[]>;
}

const fast = { accept: '20s', write: '20s', reboot: '20s', health: '20s' };

async function fleet(
  plane: ControlPlane,
  site: string,
  count: number,
  behaviors: Record<number, SimulatedNodeSpec['behavior']> = {},
) {
  const nodes = Array.from({ length: count }, (_, i) => ({
    nodeId: `${site}-${i + 1}`,
    labels: { site },
    behavior: behaviors[i] ?? 'ok',
  }));
  return startSimulatedFleet({
    nc: plane.nc,
    trustedKeys: plane.trustedKeys,
    controlPlaneKey: plane.key,
    nodes,
  });
}

const SCENARIOS: Record<string, Scenario> = {
  success: {
    description:
      'three nodes in waves 1,100% from a rootfs (image build child), an approval gate and a soak timer; succeeds',
    async run(plane) {
      const f = await fleet(plane, 'rec-ok', 3);
      try {
        const handle = await startRollout(plane.client, {
          id: 'rec-ok',
          image: { type: 'rootfs', path: await makeRootfs('2.1.0') },
          version: '2.1.0',
          selector: 'site=rec-ok',
          waves: '1,100%',
          maxUnavailable: 2,
          soak: '1s',
          approveWaves: true,
          timeouts: fast,
        });
        await waitForStatus(plane.client, 'rec-ok', (s) => s.waitingFor === 'approval');
        await handle.executeUpdate(approveUpdate, { args: [{ by: 'operator' }] });
        const result = await handle.result();
        if (result.status !== 'succeeded') throw new Error(`rec-ok ended ${result.status}`);
        return await rolloutHistories(plane.client, 'rec-ok');
      } finally {
        await f.stop();
      }
    },
  },
  rollback: {
    description: 'the second canary fails its health check; on-failure rollback rolls the first one back',
    async run(plane, digest) {
      const f = await fleet(plane, 'rec-back', 3, { 1: 'fail-health' });
      try {
        const handle = await startRollout(plane.client, {
          id: 'rec-back',
          image: { type: 'published', digest },
          version: '2.0.0',
          selector: 'site=rec-back',
          waves: '2,100%',
          maxUnavailable: 1,
          onFailure: 'rollback',
          timeouts: fast,
        });
        const result = await handle.result();
        if (result.status !== 'rolled-back') throw new Error(`rec-back ended ${result.status}`);
        return await rolloutHistories(plane.client, 'rec-back');
      } finally {
        await f.stop();
      }
    },
  },
  'pause-resume': {
    description:
      'the canary fails, on-failure pause holds the rollout, an operator resumes it and it finishes',
    async run(plane, digest) {
      const f = await fleet(plane, 'rec-pause', 3, { 0: 'fail-health' });
      try {
        const handle = await startRollout(plane.client, {
          id: 'rec-pause',
          image: { type: 'published', digest },
          version: '2.0.0',
          selector: 'site=rec-pause',
          waves: '1,100%',
          maxUnavailable: 2,
          onFailure: 'pause',
          timeouts: fast,
        });
        await waitForStatus(plane.client, 'rec-pause', (s) => s.status === 'paused');
        await handle.executeUpdate(resumeUpdate, { args: [{ by: 'operator' }] });
        await handle.result();
        return await rolloutHistories(plane.client, 'rec-pause');
      } finally {
        await f.stop();
      }
    },
  },
  'continue-as-new': {
    description: 'four nodes with a small history budget: the rollout continues as new between waves',
    async run(plane, digest) {
      const f = await fleet(plane, 'rec-can', 4);
      try {
        const handle = await startRollout(
          plane.client,
          {
            id: 'rec-can',
            image: { type: 'published', digest },
            version: '2.0.0',
            selector: 'site=rec-can',
            waves: '2,100%',
            maxUnavailable: 2,
            timeouts: fast,
          },
          { historyBudget: 40 },
        );
        const result = await handle.result();
        if (result.run < 2) throw new Error('rec-can did not continue as new');
        return await rolloutHistories(plane.client, 'rec-can');
      } finally {
        await f.stop();
      }
    },
  },
  'nats-outage': {
    description:
      "a node workflow whose write limit passes while NATS is down; it waits and finishes once it's back",
    async run(plane) {
      const digest = `sha256:${'b'.repeat(64)}`;
      const log = signingLog(await openEventLog(plane.nc), plane.key);
      const handle = await startNodeWorkflow(plane.client, {
        rolloutId: 'rec-outage',
        nodeId: 'rec-out-1',
        digest,
        timeouts: { accept: 10_000, write: 1_500, reboot: 1_500, health: 1_500 },
      });
      const [accepted, ...rest] = upgradeEvents('rec-outage', 'rec-out-1', { version: '2.0.0', digest });
      await log.append(accepted!);
      await waitForPhase(handle, (p) => p === 'fetching and writing the passive slot');
      await plane.stack.nats.kill();
      await waitForPhase(handle, (p) => p.endsWith('(NATS unreachable)'));
      await sleep(4_000); // a few write limits pass while NATS is down
      await plane.stack.nats.restart();
      for (const event of rest) await log.append(event);
      const result = await handle.result();
      if (result.outcome !== 'upgraded') throw new Error(`rec-out-1 ended ${result.outcome}`);
      return workflowTree(plane.client, nodeWorkflowId('rec-outage', 'rec-out-1'));
    },
  },
};

/** The fixture file of a scenario's runs. */
function fixtureOf(scenario: string, description: string, runs: RecordedRun[]): HistoryFixture {
  return {
    scenario,
    description,
    workflows: runs.map((r) => ({
      workflowId: r.workflowId,
      runId: r.runId,
      workflowType: r.workflowType,
      history: historyToObject(r.history),
    })),
  };
}

async function main(names: string[]): Promise<void> {
  const unknown = names.filter((n) => !(n in SCENARIOS));
  if (unknown.length > 0) {
    console.error(`unknown scenario ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}`);
    process.exit(2);
  }
  const chosen = names.length > 0 ? names : Object.keys(SCENARIOS);
  await mkdir(HISTORIES_DIR, { recursive: true });
  const plane = await startControlPlane();
  try {
    const digest = await publishImage(plane.client, '2.0.0');
    for (const name of chosen) {
      const scenario = SCENARIOS[name]!;
      const runs = await scenario.run(plane, digest);
      const file = `${HISTORIES_DIR}${name}.json`;
      await writeFile(file, `${JSON.stringify(fixtureOf(name, scenario.description, runs), null, 1)}\n`);
      const events = runs.reduce((n, r) => n + (r.history.events?.length ?? 0), 0);
      console.log(`${name}: ${runs.length} workflow runs, ${events} events -> ${file}`);
    }
  } finally {
    await plane.stop();
  }
}

await main(process.argv.slice(2));
