// The compose file's enrolment jobs, run for real without a Docker engine: each enrol-node-N
// service's own `slotflow node preauthorize` argv and environment, with its container paths
// mapped to temp dirs, against a secured nats-server and the CLI's exported creds (as the
// nats-creds-cli volume holds them). Each agent's data dir ends up with its key and certificate,
// the log says the node is enrolled under that key, and a second `docker compose up` succeeds.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NatsConnection } from '@nats-io/nats-core';
import { openEventLog } from '../../eventlog/index.ts';
import { loadNodeIdentity } from '../../node-agent/event-signer.ts';
import { EnrolmentCertificate } from '../../schema/index.ts';
import { initKeys } from '../../signing/index.ts';
import { controlPlaneTrustedKeys, readTrustState } from '../../trust/index.ts';
import { runCli } from '../helpers/cli.ts';
import { startNats, type NatsHandle } from '../helpers/servers.ts';
import { loadCompose, type Service } from './compose-model.ts';
import { parseInvocation } from './cli-contract.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const compose = loadCompose(join(ROOT, 'docker-compose.yml'));
const enrolJobs = [...compose.services.values()].filter(
  (s) =>
    s.build !== undefined &&
    Array.isArray(s.command) &&
    parseInvocation(s.command as string[]).command === 'node preauthorize',
);

let nats: NatsHandle;
let admin: NatsConnection;
let root: string;
let home: string;
let cliCreds: string;

before(async () => {
  nats = await startNats({ secure: true });
  admin = await nats.connect();
  root = await mkdtemp(join(tmpdir(), 'slotflow-compose-enrol-'));
  home = join(root, 'keys');
  await initKeys(home);
  // The CLI's creds and the CA alone, as nats-auth exports them into the nats-creds-cli volume.
  cliCreds = join(root, 'nats-creds-cli');
  await mkdir(cliCreds);
  await copyFile(nats.security!.cliCreds, join(cliCreds, 'nats.creds'));
  await copyFile(nats.security!.ca, join(cliCreds, 'ca.pem'));
});
after(async () => {
  await admin?.close();
  await nats?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

/** The host path standing for `containerPath` of service `s` (its volume's temp dir). */
function hostPath(s: Service, containerPath: string): string {
  const m = s.volumes
    .filter((v) => containerPath === v.target || containerPath.startsWith(`${v.target}/`))
    .sort((a, b) => b.target.length - a.target.length)[0];
  assert.ok(m?.source, `${s.name}: ${containerPath} is on no volume`);
  const volumeDir =
    m.source === 'slotflow-keys' ? home : m.source === 'nats-creds-cli' ? cliCreds : join(root, m.source);
  return join(volumeDir, posix.relative(m.target, containerPath));
}

/** Runs a service's command as the container would, its paths mapped to the temp volumes. */
async function runJob(s: Service): Promise<{ nodeId: string; dataDir: string }> {
  const argv = s.command as string[];
  const { flags } = parseInvocation(argv);
  const dataDir = hostPath(s, flags['data-dir'] ?? '');
  const args = argv.map((a) => (a === flags['data-dir'] ? dataDir : a));
  const env = {
    NATS_URL: nats.url,
    NATS_CREDS: hostPath(s, s.environment['NATS_CREDS'] ?? ''),
    NATS_TLS_CA: hostPath(s, s.environment['NATS_TLS_CA'] ?? ''),
    SLOTFLOW_HOME: hostPath(s, s.environment['SLOTFLOW_HOME'] ?? ''),
  };
  const r = await runCli(args, env);
  assert.equal(r.code, 0, `${s.name}: ${args.join(' ')}\n${r.stderr}`);
  return { nodeId: flags['node-id'] ?? '', dataDir };
}

test('compose enrol - each enrol job enrols its agent’s node into its data volume, and runs again on the next up', async () => {
  assert.equal(enrolJobs.length, 3, 'one enrolment job per agent');
  const done = [];
  for (const job of enrolJobs) done.push(await runJob(job));
  const state = await readTrustState(await openEventLog(admin), await controlPlaneTrustedKeys(home));
  for (const { nodeId, dataDir } of done) {
    const identity = await loadNodeIdentity(dataDir);
    const certificate = EnrolmentCertificate.parse(
      JSON.parse(await readFile(join(dataDir, 'enrolment.json'), 'utf8')),
    );
    assert.equal(certificate.nodeId, nodeId);
    assert.equal(certificate.keyId, identity.keyId, `${nodeId}'s certificate is for the key in its data dir`);
    const node = state.nodes.get(nodeId);
    assert.equal(node?.status, 'enrolled', `the log says ${nodeId} is enrolled`);
    assert.equal(node.keyId, identity.keyId);
  }
  // `docker compose up` again: the jobs run again and must succeed with the same keys.
  for (const job of enrolJobs) await runJob(job);
  const after = await readTrustState(await openEventLog(admin), await controlPlaneTrustedKeys(home));
  for (const { nodeId } of done) assert.equal(after.nodes.get(nodeId)?.keyId, state.nodes.get(nodeId)?.keyId);
});
