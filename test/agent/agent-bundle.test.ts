// The agent as a slot carries it: the bundle lab/agent-bundle.ts builds (no VM is started).
// Without P2P the bundled agent must load no chunk holding libp2p or Temporal; with P2P it must
// find libp2p in the chunks it loads on demand and still come up.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AGENT_NODE_FLAGS, bundleCli } from '../../lab/agent-bundle.ts';
import { createMeshKey, meshKeyPath } from '../../p2p/mesh-key.ts';
import { keysDir } from '../../signing/index.ts';
import { preauthorize } from '../helpers/enrol.ts';
import { EventWatch } from './event-watch.ts';
import { startFleet, type Fleet } from './harness.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const TRACE_HOOK = pathToFileURL(fileURLToPath(new URL('./module-trace.ts', import.meta.url))).href;

/** Module path comments esbuild leaves in unminified chunks, and imports of external packages. */
const LIBP2P = /^\/\/ .*node_modules\/(libp2p|@libp2p|@chainsafe)\//m;
const TEMPORAL = /["']@temporalio\//;

let fleet: Fleet;
let dist: string;
const procs: ChildProcess[] = [];
before(async () => {
  fleet = await startFleet();
  dist = join(fleet.root, 'slot', 'dist');
  await bundleCli(REPO, dist);
  // The agent reads its version from the package.json beside its modules' folder.
  await cp(join(REPO, 'package.json'), join(fleet.root, 'slot', 'package.json'));
  await createMeshKey(meshKeyPath(fleet.home));
});
after(async () => {
  for (const p of procs) p.kill('SIGKILL');
  await fleet?.stop();
});

/** Runs `node <flags> dist/main.js agent` until NodeRegistered; returns the chunks it loaded. */
async function bundledAgent(nodeId: string, args: readonly string[] = []): Promise<Map<string, string>> {
  const dataDir = join(fleet.root, 'nodes', nodeId);
  await mkdir(dataDir, { recursive: true });
  await preauthorize(fleet.nc, fleet.log, fleet.home, nodeId, dataDir);
  const trace = join(fleet.root, `${nodeId}.modules`);
  const logPath = join(fleet.root, `${nodeId}.log`);
  const log = await open(logPath, 'w');
  const events = new EventWatch(fleet.log, nodeId);
  const child = spawn(
    process.execPath,
    [
      ...AGENT_NODE_FLAGS,
      `--import=${TRACE_HOOK}`,
      join(dist, 'main.js'),
      'agent',
      '--node-id',
      nodeId,
      '--data-dir',
      dataDir,
      '--trusted-keys',
      keysDir(fleet.home),
      '--reboot',
      'command',
      '--reboot-command',
      'true',
      ...args,
    ],
    {
      stdio: ['ignore', log.fd, log.fd],
      env: {
        ...process.env,
        NATS_URL: fleet.nats.url,
        SLOTFLOW_HOME: fleet.home,
        SLOTFLOW_LAB: '1',
        SLOTFLOW_MODULE_TRACE: trace,
      },
    },
  );
  procs.push(child);
  try {
    await events
      .waitFor('NodeRegistered from the bundled agent', (es) =>
        es.some((e) => e.event.type === 'NodeRegistered'),
      )
      .catch(async (err: Error) => {
        throw new Error(`${err.message}\n${await readFile(logPath, 'utf8')}`);
      });
  } finally {
    child.kill('SIGKILL');
    await events.stop();
    await log.close();
  }
  const chunks = new Map<string, string>();
  for (const line of (await readFile(trace, 'utf8')).split('\n')) {
    const url = line.slice(line.indexOf(' ') + 1);
    if (!url.startsWith(pathToFileURL(dist).href)) continue;
    const path = fileURLToPath(url);
    chunks.set(path.slice(dist.length + 1), await readFile(path, 'utf8'));
  }
  return chunks;
}

test('agent bundle - without P2P the bundled agent loads no chunk with libp2p or Temporal', async () => {
  const chunks = await bundledAgent('bundle-light');
  assert.ok(chunks.has('main.js') && chunks.size > 2, `loaded chunks: ${[...chunks.keys()].join(', ')}`);
  const libp2p = [...chunks].filter(([, text]) => LIBP2P.test(text)).map(([name]) => name);
  const temporal = [...chunks].filter(([, text]) => TEMPORAL.test(text)).map(([name]) => name);
  assert.deepEqual(libp2p, [], 'chunks holding libp2p code');
  assert.deepEqual(temporal, [], 'chunks importing @temporalio');
});

test('agent bundle - with P2P the bundled agent loads libp2p from its chunks and registers', async () => {
  const chunks = await bundledAgent('bundle-mesh', ['--p2p-listen', '/ip4/127.0.0.1/tcp/0']);
  const libp2p = [...chunks].filter(([, text]) => LIBP2P.test(text)).map(([name]) => name);
  assert.ok(libp2p.length > 0, `no loaded chunk holds libp2p; loaded: ${[...chunks.keys()].join(', ')}`);
});
