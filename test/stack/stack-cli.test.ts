import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { pickFreePorts } from '../../stack/index.ts';
import { isAlive } from '../../stack/pids.ts';

const slotflow = fileURLToPath(new URL('../../bin/slotflow', import.meta.url));

/** Runs the CLI as a user would; never rejects, the test looks at the exit code. */
function run(args: string[], env: Record<string, string> = {}) {
  return execa(slotflow, args, {
    reject: false,
    env: { SLOTFLOW_LOG_LEVEL: 'warn', ...env },
    timeout: 120_000,
  });
}

// `stack up` starts detached servers that outlive the CLI; if a test fails halfway they
// are stopped by `after`, and by the exit hook if the test process dies before that.
const dataDirs: string[] = [];
function killRecorded(): void {
  for (const dir of dataDirs) {
    try {
      const record = JSON.parse(readFileSync(join(dir, 'stack.json'), 'utf8')) as {
        temporal: { pid: number };
        nats: { pid: number };
        registry?: { pid: number };
      };
      for (const pid of [record.temporal.pid, record.nats.pid, record.registry?.pid ?? 0]) {
        if (!pid) continue;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    } catch {
      // no record: nothing runs
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
process.on('exit', killRecorded);

async function makeDataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'slotflow-stack-'));
  dataDirs.push(dir);
  return dir;
}

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, () => resolve(server));
  });
}

describe('stack cli', () => {
  after(async () => {
    for (const dir of dataDirs) await run(['stack', 'down', '--data-dir', dir]);
    killRecorded();
  });

  test('stack cli - up, status, up again, down on free ports, with the OCI registry', async () => {
    const dataDir = await makeDataDir();
    const [temporalPort, uiPort, natsPort, registryPort] = (await pickFreePorts(4)) as [
      number,
      number,
      number,
      number,
    ];
    const ports = [
      '--registry-port',
      `${registryPort}`,
      '--temporal-port',
      `${temporalPort}`,
      '--ui-port',
      `${uiPort}`,
      '--nats-port',
      `${natsPort}`,
    ];

    const up = await run(['stack', 'up', '--data-dir', dataDir, ...ports, '--json']);
    assert.equal(up.exitCode, 0, up.stderr);
    const started = JSON.parse(up.stdout) as {
      alreadyUp: boolean;
      temporal: { pid: number; address: string };
      nats: { pid: number; url: string };
      registry: { pid: number; address: string; dataDir: string };
    };
    assert.equal(started.alreadyUp, false);
    assert.equal(started.registry.address, `127.0.0.1:${registryPort}`);
    assert.equal(started.registry.dataDir, join(dataDir, 'registry'));
    assert.equal(started.temporal.address, `127.0.0.1:${temporalPort}`);
    assert.equal(started.nats.url, `tls://127.0.0.1:${natsPort}`, 'NATS is secured by default');

    const status = await run(['stack', 'status', '--data-dir', dataDir, '--json']);
    assert.equal(status.exitCode, 0, status.stdout + status.stderr);
    const report = JSON.parse(status.stdout) as {
      temporal: { healthy: boolean; ui: string; namespace: string };
      nats: { healthy: boolean };
      registry: { healthy: boolean; address: string };
      env: Record<string, string>;
    };
    assert.equal(report.temporal.healthy, true);
    assert.equal(report.nats.healthy, true);
    assert.deepEqual(report.registry.healthy, true);
    const auth = join(dataDir, 'nats-auth');
    assert.deepEqual(report.env, {
      TEMPORAL_ADDRESS: `127.0.0.1:${temporalPort}`,
      TEMPORAL_NAMESPACE: 'default',
      NATS_URL: `tls://127.0.0.1:${natsPort}`,
      NATS_CREDS: join(auth, 'creds', 'cli.creds'),
      NATS_TLS_CA: join(auth, 'tls', 'ca.pem'),
      SLOTFLOW_REGISTRY: `127.0.0.1:${registryPort}`,
    });
    // What status tells to export is enough for a client; without the credentials NATS refuses.
    const fleet = await run(['fleet', '--json'], report.env);
    assert.equal(fleet.exitCode, 0, fleet.stderr);
    const { NATS_CREDS: _creds, ...withoutCreds } = report.env;
    const refused = await run(['fleet', '--json'], withoutCreds);
    assert.notEqual(refused.exitCode, 0);
    assert.match(refused.stderr, /authorization violation/i);
    // The registry serves the distribution API, its blobs under the stack's data dir.
    const v2 = await fetch(`http://127.0.0.1:${registryPort}/v2/`);
    assert.equal(v2.status, 200);
    await v2.body?.cancel();
    const ui = await fetch(`http://127.0.0.1:${uiPort}/`);
    assert.equal(ui.status, 200);
    await ui.body?.cancel();

    const again = await run(['stack', 'up', '--data-dir', dataDir, ...ports]);
    assert.equal(again.exitCode, 0, again.stderr);
    assert.match(again.stdout, /already up/);

    const down = await run(['stack', 'down', '--data-dir', dataDir, '--json']);
    assert.equal(down.exitCode, 0, down.stderr);
    const stopped = JSON.parse(down.stdout) as { stopped: { pid: number; outcome: string }[] };
    assert.deepEqual(stopped.stopped.map((s) => s.outcome).sort(), [
      'terminated',
      'terminated',
      'terminated',
    ]);
    assert.equal(await isAlive(started.temporal.pid), false);
    assert.equal(await isAlive(started.nats.pid), false);
    assert.equal(await isAlive(started.registry.pid), false);

    const after = await run(['stack', 'status', '--data-dir', dataDir, '--json']);
    assert.equal(after.exitCode, 1);
    assert.deepEqual(JSON.parse(after.stdout), { up: false, dataDir });
  });

  test('stack cli - a taken port fails fast with its number and the flag to change it', async () => {
    const dataDir = await makeDataDir();
    const [temporalPort, uiPort, natsPort, registryPort] = (await pickFreePorts(4)) as [
      number,
      number,
      number,
      number,
    ];
    const squatter = await listen(natsPort);
    try {
      const began = Date.now();
      const up = await run([
        'stack',
        'up',
        '--data-dir',
        dataDir,
        '--temporal-port',
        `${temporalPort}`,
        '--ui-port',
        `${uiPort}`,
        '--nats-port',
        `${natsPort}`,
        '--registry-port',
        `${registryPort}`,
      ]);
      assert.equal(up.exitCode, 1, up.stderr);
      assert.match(up.stderr, new RegExp(`port ${natsPort}\\b.*already in use.*--nats-port`));
      assert.ok(Date.now() - began < 20_000, `took ${Date.now() - began} ms`);
      assert.equal(up.stdout, '');
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
    const status = await run(['stack', 'status', '--data-dir', dataDir, '--json']);
    assert.equal(status.exitCode, 1, 'nothing may be recorded as up after a failed start');
  });

  test('stack cli - the same port for two servers is refused before anything starts', async () => {
    const dataDir = await makeDataDir();
    // The UI gets a free port of its own, so a stack already running here cannot answer first.
    const [port, ui, registry] = (await pickFreePorts(3)) as [number, number, number];
    const up = await run([
      'stack',
      'up',
      '--data-dir',
      dataDir,
      '--temporal-port',
      `${port}`,
      '--nats-port',
      `${port}`,
      '--ui-port',
      `${ui}`,
      '--registry-port',
      `${registry}`,
    ]);
    assert.equal(up.exitCode, 1);
    assert.match(up.stderr, new RegExp(`port ${port} is given to both`));
  });

  test('stack cli - bad flags exit 2 with the usage line', async () => {
    const cases = [
      ['stack', 'up', '--temporal-port', '70000'],
      ['stack', 'up', '--nats-port', 'abc'],
      ['stack', 'up', '--no-such-flag'],
      ['stack', 'status', 'extra'],
      ['stack', 'down', '--data-dir'],
    ];
    const results = await Promise.all(cases.map((args) => run(args)));
    results.forEach((result, i) => {
      assert.equal(result.exitCode, 2, `${cases[i]!.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, /^slotflow: /);
    });
  });

  test('stack cli - status and down on a data dir that was never up', async () => {
    const dataDir = await makeDataDir();
    const status = await run(['stack', 'status', '--data-dir', dataDir]);
    assert.equal(status.exitCode, 1);
    assert.match(status.stderr, /not up.*slotflow stack up/);
    const down = await run(['stack', 'down', '--data-dir', dataDir]);
    assert.equal(down.exitCode, 0);
    assert.match(down.stdout, /was not up/);
    await rm(dataDir, { recursive: true, force: true });
  });
});
