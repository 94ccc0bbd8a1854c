// What a running agent loads. Without the mesh it must load no libp2p, nothing of Temporal and
// none of the tools it has no use for; with the mesh it loads libp2p (which also proves the
// recording works). Real `slotflow agent` processes against a real nats-server, each module
// resolution recorded by a preloaded hook (module-trace.ts) until the node has registered.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createMeshKey, meshKeyPath } from '../../p2p/mesh-key.ts';
import { startFleet, type Fleet, type TestAgent } from './harness.ts';

const TRACE_HOOK = pathToFileURL(new URL('./module-trace.ts', import.meta.url).pathname).href;
const REPO = new URL('../../', import.meta.url).href;

/** Packages and project modules an agent without the mesh has no business loading. */
const NOT_WITHOUT_P2P: readonly RegExp[] = [
  /\/node_modules\/libp2p\//,
  /\/node_modules\/@libp2p\//,
  /\/node_modules\/@chainsafe\//,
  /\/node_modules\/@multiformats\//,
  /\/node_modules\/multiformats\//,
  /\/node_modules\/@temporalio\//,
  /\/node_modules\/execa\//,
  /\/node_modules\/yaml\//,
  /\/node_modules\/esbuild\//,
  new RegExp(`^${REPO}(workflows|workers|activities|cli/commands/(?!agent\\.ts))`),
  new RegExp(`^${REPO}p2p/(index|node|peer|identity|mesh-key)\\.ts$`),
  new RegExp(`^${REPO}node-agent/p2p-link\\.ts$`),
];

let fleet: Fleet;
before(async () => {
  fleet = await startFleet();
});
after(() => fleet?.stop());

/** Starts an agent with the trace hook and returns the modules each of its processes loaded once registered. */
async function modulesOf(
  nodeId: string,
  args: readonly string[] = [],
  env: Readonly<Record<string, string>> = {},
): Promise<{ agent: TestAgent; byPid: Map<number, string[]> }> {
  const trace = join(fleet.root, `${nodeId}.modules`);
  const agent = await fleet.addAgent({
    nodeId,
    args,
    env: { ...env, NODE_OPTIONS: `--import=${TRACE_HOOK}`, SLOTFLOW_MODULE_TRACE: trace },
  });
  // Registered, then one heartbeat: the agent is up and idling.
  await agent.events.waitFor('NodeRegistered then NodeHeartbeat', (events) => {
    const at = events.findIndex((e) => e.event.type === 'NodeRegistered');
    return at >= 0 && events.slice(at).some((e) => e.event.type === 'NodeHeartbeat');
  });
  const byPid = new Map<number, string[]>();
  for (const line of (await readFile(trace, 'utf8')).split('\n')) {
    const space = line.indexOf(' ');
    if (space < 0) continue;
    const pid = Number(line.slice(0, space));
    byPid.set(pid, [...(byPid.get(pid) ?? []), line.slice(space + 1)]);
  }
  return { agent, byPid };
}

function forbidden(urls: readonly string[]): string[] {
  return urls.filter((url) => NOT_WITHOUT_P2P.some((re) => re.test(url)));
}

test('agent modules - without P2P no process of the agent loads libp2p, Temporal or unused tools', async () => {
  const { agent, byPid } = await modulesOf('light-1');
  // The simulated machine: the supervisor (the CLI process) and the booted system, its child.
  assert.ok(byPid.size >= 2, `expected the supervisor and the system process, traced ${byPid.size}`);
  for (const [pid, urls] of byPid) {
    assert.ok(
      urls.some((u) => u.startsWith(REPO)),
      `process ${pid}: the trace holds no slotflow module, so it recorded nothing useful`,
    );
    assert.deepEqual(forbidden(urls), [], `process ${pid} loaded modules it does not use`);
  }
  const system = [...byPid.values()].find((urls) =>
    urls.some((u) => u.endsWith('node-agent/system-main.ts')),
  );
  assert.ok(system, `no traced process ran node-agent/system-main.ts\n${await agent.logTail()}`);
  assert.ok(system.some((u) => u.endsWith('node-agent/agent.ts')));
});

test('agent modules - with --reboot command the one agent process loads no libp2p either', async () => {
  // A lab machine: the file driver with a `true` reboot, which only SLOTFLOW_LAB lets start.
  const { byPid } = await modulesOf('light-2', ['--reboot', 'command', '--reboot-command', 'true'], {
    SLOTFLOW_LAB: '1',
  });
  assert.equal(byPid.size, 1, 'one process: the agent runs in the CLI process');
  const [urls] = [...byPid.values()];
  assert.ok(urls!.some((u) => u.endsWith('node-agent/agent.ts')));
  assert.deepEqual(forbidden(urls!), []);
});

test('agent modules - with P2P configured the agent loads libp2p when it starts the link', async () => {
  await createMeshKey(meshKeyPath(fleet.home));
  const { byPid } = await modulesOf('mesh-1', ['--p2p-listen', '/ip4/127.0.0.1/tcp/0']);
  const system = [...byPid.values()].find((urls) =>
    urls.some((u) => u.endsWith('node-agent/system-main.ts')),
  );
  assert.ok(system);
  assert.ok(system.some((u) => u.endsWith('node-agent/p2p-link.ts')));
  assert.ok(system.some((u) => /\/node_modules\/libp2p\//.test(u)));
  assert.ok(
    system.some((u) => /\/node_modules\/@chainsafe\/libp2p-gossipsub\/|\/@libp2p\/gossipsub\//.test(u)),
  );
});
