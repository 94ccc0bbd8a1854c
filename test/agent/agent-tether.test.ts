// Agent processes started by a test die with the test process, however it ends: SIGKILLed
// (its pipe closes), or stopped with its whole process group (as a runner's time limit does).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startScriptProcess } from '../helpers/script-process.ts';
import { groupMembers } from './agent-process.ts';

const AGENT_PROCESS = fileURLToPath(new URL('./agent-process.ts', import.meta.url));
const SIGNING = fileURLToPath(new URL('../../signing/index.ts', import.meta.url));

/** Starts a test-like process that starts one agent; resolves with the agent's pid. */
async function testProcessWithAgent(dir: string) {
  const script = `
    import { AgentProcess } from ${JSON.stringify(AGENT_PROCESS)};
    import { initKeys, keysDir } from ${JSON.stringify(SIGNING)};
    const dir = ${JSON.stringify(dir)};
    await initKeys(dir);
    const agent = await AgentProcess.start(
      ['--node-id', 'tethered-1', '--data-dir', dir + '/node', '--trusted-keys', keysDir(dir), '--initial-version', '1.0.0'],
      { ...process.env, NATS_URL: 'nats://127.0.0.1:9' },
      dir + '/agent.log',
    );
    console.log(JSON.stringify({ pid: agent.pid }));
    setInterval(() => {}, 60_000);
  `;
  // Its own process group, so the group can be signalled as a runner would.
  const { child, firstLine: first } = await startScriptProcess(script, { detached: true });
  return { child, agent: (JSON.parse(first) as { pid: number }).pid };
}

async function goneWithin(pid: number, ms: number): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(100)) {
    if ((await groupMembers(pid)).length === 0) return true;
  }
  return false;
}

for (const [how, end] of [
  ['its test process is SIGKILLed', (pid: number) => process.kill(pid, 'SIGKILL')],
  ['its test process group is sent SIGTERM', (pid: number) => process.kill(-pid, 'SIGTERM')],
] as const) {
  test(`agent process - the agent dies when ${how}`, { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'slotflow-tether-'));
    try {
      const { child, agent } = await testProcessWithAgent(dir);
      assert.ok((await groupMembers(agent)).length > 0, 'the agent runs');
      end(child.pid!);
      await child;
      const gone = await goneWithin(agent, 10_000);
      if (!gone) process.kill(-agent, 'SIGKILL');
      assert.ok(gone, `agent ${agent} outlived its test process`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
