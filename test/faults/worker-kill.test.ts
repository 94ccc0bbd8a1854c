// A short sample of the worker-kill campaign (test/faults/worker-kill.ts); `npm run soak --
// worker-kill --trials N` runs a longer one. The seed is printed and the report written to
// test-output/worker-kill-<seed>.json; SLOTFLOW_WORKER_KILL_SEED replays a campaign.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.ts';
import { campaignSettings, writeReport } from './campaign.ts';
import { KILL_POINTS, runWorkerKillCampaign } from './worker-kill.ts';

let plane: ControlPlane;
before(async () => {
  plane = await startControlPlane({ worker: false });
});
after(() => plane?.stop());

test('worker kill - SIGKILLed at random points of rollouts, every rollout ends as it should and no node is commanded twice', async () => {
  const settings = campaignSettings('worker-kill', 'SLOTFLOW_WORKER_KILL', 3);
  const say = (line: string) => process.stderr.write(`worker-kill: ${line}\n`);
  say(`seed ${settings.seed}, ${settings.faults} kills (replay: SLOTFLOW_WORKER_KILL_SEED=${settings.seed})`);
  const report = await runWorkerKillCampaign(plane, settings, say);
  const file = await writeReport(settings.report, report);
  say(`report ${file}`);
  assert.deepEqual(report.problems, [], `seed ${settings.seed}: see ${file}`);
  assert.equal(
    report.killsDone,
    settings.faults,
    `every planned kill happened: ${JSON.stringify(report.kills)}`,
  );
  if (settings.faults >= 6) {
    for (const point of KILL_POINTS) assert.ok(report.pointsHit[point], `a kill during ${point}`);
  }
});
