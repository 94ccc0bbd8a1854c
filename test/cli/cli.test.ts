import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEventLog } from '../../eventlog/index.ts';
import { runCli } from '../helpers/cli.ts';
import { startNats, type NatsHandle } from '../helpers/servers.ts';
import { initKeys, loadSigningKey } from '../../signing/index.ts';
import { signedStory } from '../../simulator/identity.ts';
import { rolloutStory } from '../fixtures/events.ts';

let nats: NatsHandle;
let env: Record<string, string>;

before(async () => {
  nats = await startNats();
  env = {
    NATS_URL: nats.url,
    SLOTFLOW_HOME: await mkdtemp(join(tmpdir(), 'slotflow-cli-')),
    SLOTFLOW_LOG_LEVEL: 'warn',
  };
  // The nodes of the story are enrolled by the control plane whose keys are in SLOTFLOW_HOME.
  await initKeys(env['SLOTFLOW_HOME']!);
  const key = await loadSigningKey(env['SLOTFLOW_HOME']!);
  const nc = await nats.connect();
  const log = await openEventLog(nc);
  for (const e of signedStory(rolloutStory('r-cli'), key)) await log.append(e);
  await nc.close();
});
after(() => nats?.stop());

test('cli - no command prints help and exits 2; an unknown command names the nearest ones', async () => {
  const none = await runCli([]);
  assert.equal(none.code, 2);
  assert.match(none.stdout, /rollout start/);
  const unknown = await runCli(['rollout', 'explode']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command 'rollout explode'; did you mean: rollout start/);
});

test('cli - bad flags and values exit 2 with what to fix', async () => {
  const flag = await runCli(['fleet', '--colour']);
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /Unknown option '--colour'[\s\S]*usage: slotflow fleet/);
  const waves = await runCli(
    ['rollout', 'start', '--image', `sha256:${'a'.repeat(64)}`, '--version', '2', '--waves', '10%,abc'],
    {
      TEMPORAL_ADDRESS: '127.0.0.1:1',
    },
  );
  assert.equal(waves.code, 2, waves.stderr);
  assert.match(waves.stderr, /waves: expected waves such as 1,10%,50%,100% \('abc'/);
  const rootfs = await runCli(['rollout', 'start', '--rootfs', '/nonexistent', '--version', '2']);
  assert.equal(rootfs.code, 2);
  assert.match(rootfs.stderr, /--rootfs: expected a directory at \/nonexistent/);
  const badEnv = await runCli(['fleet'], { NATS_URL: 'localhost:4222' });
  assert.equal(badEnv.code, 2);
  assert.match(
    badEnv.stderr,
    /NATS_URL: expected a NATS URL such as nats:\/\/127.0.0.1:4222, got "localhost:4222"/,
  );
  const badId = await runCli(['rollout', 'status', 'a/b']);
  assert.equal(badId.code, 2);
  const badImage = await runCli(['rollout', 'start', '--image', 'Registry.io/OS:2', '--version', '2'], {
    TEMPORAL_ADDRESS: '127.0.0.1:1',
  });
  assert.equal(badImage.code, 2, badImage.stderr);
  assert.match(
    badImage.stderr,
    /--image: OCI reference 'Registry.io\/OS:2' has repository 'OS'; expected lowercase/,
  );
  const pushDigest = await runCli(
    ['image', 'build', '--rootfs', '/tmp', '--version', '2', '--push', `os@sha256:${'a'.repeat(64)}`],
    { TEMPORAL_ADDRESS: '127.0.0.1:1' },
  );
  assert.equal(pushDigest.code, 2, pushDigest.stderr);
  assert.match(pushDigest.stderr, /--push: expected REPO\[:TAG\] .*a digest is what the push yields/);
});

test('cli - image build --format rauc needs the compatible, certificate and key, and --rauc-* flags need it', async () => {
  const build = ['image', 'build', '--rootfs', '/tmp', '--version', '2.0.0'];
  const missing = await runCli([...build, '--format', 'rauc', '--rauc-compatible', 'acme']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--format rauc signs a RAUC bundle: give --rauc-cert, --rauc-key/);
  const stray = await runCli([...build, '--rauc-cert', 'c.pem']);
  assert.equal(stray.code, 2);
  assert.match(stray.stderr, /--rauc-cert only applies to --format rauc, got --format ext4/);
  const format = await runCli([
    ...build,
    ...['--format', 'rauc', '--rauc-compatible', 'acme', '--rauc-cert', 'c', '--rauc-key', 'k'],
    ...['--rauc-bundle-format', 'casync'],
  ]);
  assert.equal(format.code, 2);
  assert.match(format.stderr, /--rauc-bundle-format: .*expected one of "verity"\|"plain"/);
});

test('cli - an unreachable Temporal says what to do', async () => {
  const r = await runCli(['rollout', 'list'], { TEMPORAL_ADDRESS: '127.0.0.1:1' });
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /cannot reach Temporal at 127.0.0.1:1 .* run 'slotflow stack up' or set TEMPORAL_ADDRESS/,
  );
});

test('cli - keys init writes a 0600 key once and exports the public key', async () => {
  const home = await mkdtemp(join(tmpdir(), 'slotflow-keys-'));
  const trusted = join(home, 'trusted');
  const first = await runCli(['keys', 'init', '--json', '--export-public', trusted], { SLOTFLOW_HOME: home });
  assert.equal(first.code, 0, first.stderr);
  const made = JSON.parse(first.stdout) as { keyId: string; privatePath: string; created: boolean };
  assert.equal(made.created, true);
  assert.equal((await stat(made.privatePath)).mode & 0o777, 0o600);
  await stat(join(trusted, 'control-plane.pub'));
  // The mesh pre-shared key beside it, private, and a copy for the agents.
  assert.equal((await stat(join(home, 'keys', 'mesh.psk'))).mode & 0o777, 0o600);
  assert.equal((await stat(join(trusted, 'mesh.psk'))).mode & 0o777, 0o600);
  const again = await runCli(['keys', 'init', '--json'], { SLOTFLOW_HOME: home });
  assert.equal(again.code, 0);
  assert.equal((JSON.parse(again.stdout) as { keyId: string }).keyId, made.keyId);
});

test('cli - keys init --force refuses to strand agents; revoking the signing key is refused', async () => {
  const home = await mkdtemp(join(tmpdir(), 'slotflow-keys-'));
  const first = await runCli(['keys', 'init', '--json'], { SLOTFLOW_HOME: home });
  const { keyId } = JSON.parse(first.stdout) as { keyId: string };
  const forced = await runCli(['keys', 'init', '--force'], { SLOTFLOW_HOME: home });
  assert.equal(forced.code, 2);
  assert.match(
    forced.stderr,
    new RegExp(`key already exists \\(${keyId}\\).*Run 'slotflow keys rotate'.*--strand-agents`),
  );
  const revoke = await runCli(['keys', 'revoke', keyId], { SLOTFLOW_HOME: home });
  assert.equal(revoke.code, 2);
  assert.match(revoke.stderr, /is the key that signs now; run 'slotflow keys rotate' first/);
  const list = JSON.parse((await runCli(['keys', 'list', '--json'], { SLOTFLOW_HOME: home })).stdout) as {
    signing: string;
  };
  assert.equal(list.signing, keyId);
  const replaced = await runCli(['keys', 'init', '--force', '--strand-agents', '--json'], {
    SLOTFLOW_HOME: home,
  });
  assert.equal(replaced.code, 0, replaced.stderr);
  assert.notEqual((JSON.parse(replaced.stdout) as { keyId: string }).keyId, keyId);
});

test('cli - events filter by rollout and node; --json prints one event per line', async () => {
  const all = await runCli(['events', '--json', '--rollout', 'r-cli'], env);
  assert.equal(all.code, 0, all.stderr);
  const lines = all.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { seq: number; event: { type: string; rolloutId?: string } });
  assert.ok(lines.length > 10);
  assert.ok(lines.every((l) => l.event.rolloutId === 'r-cli'));
  const node = await runCli(['events', '--node', 'n-3'], env);
  assert.equal(node.code, 0);
  assert.match(node.stdout, /NodeFellBack +rollout=r-cli node=n-3/);
  assert.doesNotMatch(node.stdout, /node=n-1/);
});

test('cli - fleet shows every registered node from the event log', async () => {
  const human = await runCli(['fleet'], env);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /n-1 .*1\.1\.0/);
  assert.match(human.stdout, /3 node\(s\)/);
  const json = JSON.parse((await runCli(['fleet', '--json'], env)).stdout) as {
    nodes: { nodeId: string; version: string; activeSlot: string }[];
  };
  assert.deepEqual(
    json.nodes.map((n) => [n.nodeId, n.version, n.activeSlot]),
    [
      ['n-1', '1.1.0', 'b'],
      ['n-2', '1.1.0', 'b'],
      ['n-3', '1.0.0', 'a'],
    ],
  );
});

test('cli - every command in the catalog loads, with the path it is listed under', async () => {
  const { CATALOG } = await import('../../cli/catalog.ts');
  for (const entry of CATALOG) {
    const command = await entry.load();
    assert.deepEqual(command.path, entry.path);
    assert.match(command.usage, new RegExp(`^slotflow ${entry.path.join(' ')}\\b`));
  }
});
