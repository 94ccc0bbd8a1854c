// A short sample of the nats-kill campaign (test/faults/nats-kill.ts); `npm run soak --
// nats-kill --trials N` runs a longer one. The seed is printed and the report written to
// test-output/nats-kill-<seed>.json; SLOTFLOW_NATS_KILL_SEED replays a campaign.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.ts';
import { tempDir } from '../p2p/helpers.ts';
import { campaignSettings, writeReport } from './campaign.ts';
import { runNatsKillCampaign } from './nats-kill.ts';

let plane: ControlPlane;
let root: string;
// The agents' logs, journals and ledgers stay for a look when the campaign found something.
let passed = false;
before(async () => {
  plane = await startControlPlane();
  root = await tempDir('slotflow-nats-kill-');
});
after(async () => {
  await plane?.stop();
  if (root && passed) await rm(root, { recursive: true, force: true });
  else if (root) process.stderr.write(`nats-kill: agent logs, journals and ledgers kept in ${root}\n`);
});

test('nats kill - SIGKILLed before and after the plan reached the agents, rollouts complete and every event is stored once', async () => {
  const settings = campaignSettings('nats-kill', 'SLOTFLOW_NATS_KILL', 2);
  const say = (line: string) => process.stderr.write(`nats-kill: ${line}\n`);
  say(`seed ${settings.seed}, ${settings.faults} kills (replay: SLOTFLOW_NATS_KILL_SEED=${settings.seed})`);
  const report = await runNatsKillCampaign(plane, root, settings, say);
  const file = await writeReport(settings.report, report);
  say(`report ${file}`);
  assert.deepEqual(report.problems, [], `seed ${settings.seed}: see ${file} (agent logs in ${root})`);
  assert.equal(report.killsDone, settings.faults);
  assert.ok((report.events?.produced ?? 0) > 0, 'the agents produced events');
  passed = true;
});
