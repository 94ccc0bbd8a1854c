// The worker and the CLI reach Temporal over mutual TLS when TEMPORAL_TLS_* are set. The
// Temporal CLI's dev server has no TLS option, so a TLS terminator in front of it plays the
// TLS-only frontend (as Temporal Cloud's mTLS endpoints are): it accepts only clients whose
// certificate the CA signed and speaks HTTP/2 (ALPN h2) on to the dev server.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';
import { createProcessGroup, type ProcessGroup } from '../../demo/processes.ts';
import { ensureTlsFiles, issueClientCertificate } from '../../stack/index.ts';
import { runCli } from '../helpers/cli.ts';
import { startNats, startTemporal, type NatsHandle, type TemporalHandle } from '../helpers/servers.ts';

let temporal: TemporalHandle;
let nats: NatsHandle;
let proxy: Server;
let home: string;
let group: ProcessGroup;
let env: Record<string, string>;
/** Connections the terminator accepted with a verified client certificate. */
let authorized = 0;

async function startTlsTerminator(
  files: { ca: string; cert: string; key: string },
  target: string,
): Promise<Server> {
  const [host, port] = target.split(':') as [string, string];
  const server = createServer(
    {
      ca: await readFile(files.ca),
      cert: await readFile(files.cert),
      key: await readFile(files.key),
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ['h2'],
    },
    (socket) => {
      if (socket.authorized) authorized++;
      const upstream = netConnect(Number(port), host);
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

before(async () => {
  [temporal, nats] = await Promise.all([startTemporal(), startNats()]);
  home = await mkdtemp(join(tmpdir(), 'slotflow-temporal-tls-'));
  const tlsDir = join(home, 'tls');
  const files = await ensureTlsFiles(tlsDir);
  const client = await issueClientCertificate(tlsDir, 'slotflow-worker');
  proxy = await startTlsTerminator(files, temporal.address);
  group = createProcessGroup();
  env = {
    SLOTFLOW_HOME: home,
    SLOTFLOW_LOG_LEVEL: 'warn',
    TEMPORAL_ADDRESS: `127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    TEMPORAL_NAMESPACE: temporal.namespace,
    TEMPORAL_TLS_CA: files.ca,
    TEMPORAL_TLS_CERT: client.cert,
    TEMPORAL_TLS_KEY: client.key,
    NATS_URL: nats.url,
  };
});

after(async () => {
  await group?.stopAll();
  proxy?.close();
  await Promise.all([temporal?.stop(), nats?.stop()]);
  if (home) await rm(home, { recursive: true, force: true });
});

test('temporal tls - the worker runs a rollout the CLI starts, both over mutual TLS', async () => {
  assert.equal((await runCli(['keys', 'init'], env)).code, 0);
  group.start('worker', ['worker'], env, join(home, 'worker.log'));
  // A digest nobody published: the rollout workflow runs on the worker, its image step fails.
  const missing = `sha256:${'0'.repeat(64)}`;
  const started = await runCli(
    ['rollout', 'start', '--id', 'tls-1', '--image', missing, '--version', '2.0.0', '--wait', '--json'],
    env,
    180_000,
  );
  assert.equal(started.code, 1, started.stderr);
  const view = JSON.parse(started.stdout) as { status: string };
  assert.equal(view.status, 'failed');
  const listed = await runCli(['rollout', 'list', '--json'], env);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /tls-1/);
  assert.ok(authorized >= 2, `the worker and the CLI came through TLS (${authorized} connections)`);
});

test('temporal tls - without a client certificate or the CA the connection is refused', async () => {
  const { TEMPORAL_TLS_CERT: _cert, TEMPORAL_TLS_KEY: _key, ...noCert } = env;
  const refused = await runCli(['rollout', 'list', '--json'], noCert);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /cannot reach Temporal/);
  const { TEMPORAL_TLS_CA: _ca, ...noCa } = env;
  const untrusted = await runCli(['rollout', 'list', '--json'], noCa);
  assert.notEqual(untrusted.code, 0);
  assert.match(untrusted.stderr, /cannot reach Temporal/);
});
