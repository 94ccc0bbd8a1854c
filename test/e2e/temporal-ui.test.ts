// Opens a finished rollout in the Temporal dev server's Web UI with headless Chromium and checks
// that a node workflow's history reads as the node's steps. The screenshots stay in test-output/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { startRollout } from '../../cli/rollout-client.ts';
import { rolloutSearchUrl, workflowUrl } from '../../cli/ui-url.ts';
import { startSimulatedFleet, type SimulatedFleet } from '../../simulator/fleet.ts';
import { startControlPlane, type ControlPlane } from '../helpers/control-plane.ts';
import { publishImage } from '../helpers/rollouts.ts';

const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));
let plane: ControlPlane;
let fleet: SimulatedFleet;
let browser: Browser;

before(async () => {
  plane = await startControlPlane();
  browser = await chromium.launch({
    executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  await mkdir(OUTPUT, { recursive: true });
});
after(async () => {
  await browser?.close();
  await fleet?.stop();
  await plane?.stop();
});

test('temporal ui - the rollout and its node workflows are listed, and a node history shows its steps', async () => {
  const digest = await publishImage(plane.client, '2.0.0');
  fleet = await startSimulatedFleet({
    nc: plane.nc,
    trustedKeys: plane.trustedKeys,
    controlPlaneKey: plane.key,
    nodes: [1, 2, 3].map((i) => ({ nodeId: `ui-${i}`, labels: { site: 'ui' } })),
  });
  const handle = await startRollout(plane.client, {
    id: 'r-ui',
    image: { type: 'published', digest },
    version: '2.0.0',
    selector: 'site=ui',
    waves: '1,100%',
  });
  assert.equal((await handle.result()).status, 'succeeded');

  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  const base = plane.stack.temporal.uiUrl;
  await page.goto(rolloutSearchUrl(base, plane.stack.temporal.namespace, 'r-ui'));
  await page.getByText('node/r-ui/ui-2').first().waitFor({ timeout: 30_000 });
  for (const id of ['rollout/r-ui', 'node/r-ui/ui-1', 'node/r-ui/ui-3']) {
    assert.ok(await page.getByText(id).first().isVisible(), `${id} is listed under RolloutId="r-ui"`);
  }
  await page.screenshot({ path: `${OUTPUT}temporal-ui-rollout-list.png`, fullPage: true });

  const { runId } = await plane.client.workflow.getHandle('node/r-ui/ui-2').describe();
  await page.goto(`${workflowUrl(base, plane.stack.temporal.namespace, 'node/r-ui/ui-2', runId)}/history`);
  for (const step of ['SlotWritten', 'NodeBooted', 'HealthCheckPassed', 'UpgradeCommitted']) {
    await page.getByText(step).first().waitFor({ timeout: 30_000 });
  }
  const text = await page.locator('body').innerText();
  assert.match(text, /sendCommand/);
  assert.match(text, /UpgradeCommandAccepted/);
  await page.screenshot({ path: `${OUTPUT}temporal-ui-node-history.png`, fullPage: true });
});
