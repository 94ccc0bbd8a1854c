// Recorded histories of representative rollouts (test/fixtures/histories, written by
// `npm run record-histories`) replayed against the current workflow code, bundled as the worker
// bundles it. A change that would make a running rollout non-deterministic on upgrade fails here.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker, bundleWorkflowCode, type WorkflowBundle } from '@temporalio/worker';
import { createLogger } from '../../runtime/log.ts';
import { installTemporalRuntime } from '../../workers/temporal-runtime.ts';
import { WORKFLOWS_PATH } from '../../workers/worker.ts';
import { HISTORIES_DIR, historyFromObject, type HistoryFixture } from '../helpers/histories.ts';

/** The scenarios the recorder writes; each must be on disk, so none can go missing unnoticed. */
const SCENARIOS = ['success', 'rollback', 'pause-resume', 'continue-as-new', 'nats-outage'];

/**
 * Every history file is replayed: the recorder's scenarios and any older recording kept beside
 * them (say `success@2026-11.json`) while rollouts of that age may still be running.
 */
const FILES = (await readdir(HISTORIES_DIR)).filter((f) => f.endsWith('.json')).sort();

let bundle: WorkflowBundle;

before(async () => {
  const logger = createLogger('test:replay');
  if (!process.env['SLOTFLOW_LOG_LEVEL']) logger.level = 'warn';
  installTemporalRuntime(logger);
  bundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH });
});

async function loadFixture(file: string): Promise<HistoryFixture> {
  return JSON.parse(await readFile(join(HISTORIES_DIR, file), 'utf8')) as HistoryFixture;
}

test('replay - every recorded scenario is on disk and together they cover every workflow type', async () => {
  for (const scenario of SCENARIOS)
    assert.ok(FILES.includes(`${scenario}.json`), `${scenario}.json is recorded`);
  const types = new Set<string>();
  for (const file of FILES) for (const w of (await loadFixture(file)).workflows) types.add(w.workflowType);
  assert.deepEqual([...types].sort(), ['imageBuildWorkflow', 'nodeUpgradeWorkflow', 'rolloutWorkflow']);
});

for (const file of FILES) {
  const scenario = file.replace(/\.json$/, '');
  test(`replay - the recorded ${scenario} rollout replays deterministically on the current workflows`, async () => {
    const fixture = await loadFixture(file);
    assert.ok(fixture.workflows.length > 0, `${scenario} holds histories`);
    const replayed = Worker.runReplayHistories(
      { workflowBundle: bundle, replayName: `replay-${scenario}` },
      fixture.workflows.map((w) => ({ workflowId: w.workflowId, history: historyFromObject(w.history) })),
    );
    const failures: string[] = [];
    let count = 0;
    for await (const result of replayed) {
      count++;
      if (result.error) failures.push(`${result.workflowId}: ${result.error.name}: ${result.error.message}`);
    }
    assert.deepEqual(failures, [], `${scenario}: every history replays`);
    assert.equal(count, fixture.workflows.length, `${scenario}: every history was replayed`);
  });
}
