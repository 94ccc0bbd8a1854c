// A RAUC rollout end to end through the CLI, with Debian's real rauc on two machines: stack up,
// a worker, agents with the rauc slot driver, an OCI image in the stack's registry rolled out as
// a signed bundle (`rollout start --image REF --format rauc`: pulled, converted, wrapped once and
// reused by the next rollout), installed into the passive slot, booted on trial and committed
// through RAUC; one whose health check fails and is marked bad through RAUC; and three bundles
// built by `image build --format rauc` that RAUC refuses (untrusted signer, tampered, another
// compatible) with nothing written. Each machine's
// harness plays power supply and GRUB: when the agent runs its reboot command it cuts the power,
// lets grubBoot() pick the slot and starts RAUC and the agent again on it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Objm } from '@nats-io/obj';
import { manifestOf } from '../../activities/builders/manifest.ts';
import { createProcessGroup, type ProcessGroup } from '../../demo/processes.ts';
import { writeDemoRootfs } from '../../demo/rootfs.ts';
import { connectNats } from '../../runtime/nats.ts';
import { loadConnectionConfig } from '../../runtime/config.ts';
import { IMAGES_BUCKET } from '../../schema/index.ts';
import { createRaucMachine, createRaucPki, raucMissing, type RaucMachine } from '../agent/rauc-machine.ts';
import { runCli } from '../helpers/cli.ts';
import { pushRootfs } from '../helpers/oci-images.ts';
import { preauthorizeAgent, startE2eControlPlane, waitForFleet } from '../helpers/e2e-stack.ts';

const skip = (await raucMissing()) ?? false;
const COMPATIBLE = 'slotflow-e2e';

let home: string;
let env: Record<string, string>;
let group: ProcessGroup;
const machines: RaucMachine[] = [];
const powerSupplies: (() => Promise<void>)[] = [];
const stackDir = () => join(home, 'stack');

before(async () => {
  home = await mkdtemp(join(tmpdir(), 'slotflow-e2e-rauc-'));
  env = { SLOTFLOW_HOME: home, SLOTFLOW_LOG_LEVEL: 'warn' };
  group = createProcessGroup();
});
after(async () => {
  for (const stop of powerSupplies) await stop();
  await group?.stopAll();
  for (const m of machines) await m.cleanup();
  await runCli(['stack', 'down', '--data-dir', stackDir()], env);
  await rm(home, { recursive: true, force: true });
});

/**
 * Runs the agent of `machine` and, at each reboot it asks for, cuts the power (kills the agent,
 * stops RAUC), boots (GRUB's rules, RAUC on the booted slot) and starts the agent again with a
 * new boot id. Returns the function that stops it.
 */
function powerSupply(machine: RaucMachine, nodeId: string, agentArgs: string[]): () => Promise<void> {
  const request = join(machine.dir, 'reboot-requested');
  const busEnv = {
    DBUS_SESSION_BUS_ADDRESS: machine.env['DBUS_SESSION_BUS_ADDRESS']!,
    DBUS_STARTER_BUS_TYPE: 'session',
  };
  const start = () =>
    group.start(
      nodeId,
      [...agentArgs, '--reboot', 'command', '--reboot-command', `touch ${request}`],
      { ...env, ...busEnv, SLOTFLOW_BOOT_ID: randomUUID() },
      join(home, `${nodeId}.log`),
    );
  let agent: ChildProcess = start();
  let running = true;
  const loop = (async () => {
    while (running) {
      const asked = await access(request).then(
        () => true,
        () => false,
      );
      if (!asked) {
        await sleep(200);
        continue;
      }
      agent.kill('SIGKILL');
      if (agent.exitCode === null && agent.signalCode === null) await once(agent, 'exit');
      await rm(request);
      await machine.powerOff();
      await machine.powerOn();
      agent = start();
    }
  })();
  return async () => {
    running = false;
    await loop;
  };
}

interface RolloutView {
  status: string;
  nodes: Record<string, { state: string }>;
}

async function rollout(
  id: string,
  image: string,
  version: string,
  selector: string,
  extra: string[] = [],
): Promise<RolloutView> {
  const r = await runCli(
    [
      ...['rollout', 'start', '--id', id, '--image', image, '--version', version],
      ...['--selector', selector, '--waves', '100%', '--max-unavailable', '2'],
      ...['--on-failure', 'rollback', '--wait', '--json', ...extra],
    ],
    env,
    300_000,
  );
  assert.ok(r.stdout, `rollout ${id} printed its result: ${r.stderr}`);
  return JSON.parse(r.stdout) as RolloutView;
}

/** RAUC's own word on a machine: booted slot, primary, and each slot's boot status and version. */
async function raucView(m: RaucMachine) {
  const s = await m.raucStatus();
  const slots = Object.fromEntries(
    s.slots.flatMap((entry) =>
      Object.values(entry).map((slot) => [
        slot.bootname,
        `${slot.boot_status} ${slot.slot_status?.bundle?.version ?? '-'}`,
      ]),
    ),
  );
  return { booted: s.booted, primary: s.boot_primary, slots };
}

test(
  'e2e - a RAUC rollout: signed bundles installed, trial boots committed or marked bad through RAUC, bad bundles refused',
  { skip },
  async () => {
    const stack = await startE2eControlPlane(stackDir(), env, group, home);
    assert.ok(stack.registry, 'the stack runs a registry');

    const fleetPki = await createRaucPki(join(home, 'pki', 'fleet'), 'slotflow e2e fleet');
    const roguePki = await createRaucPki(join(home, 'pki', 'rogue'), 'rogue');
    for (const [nodeId, health] of [
      ['rauc-1', 'ok'],
      ['rauc-2', 'bad'],
    ] as const) {
      const m = await createRaucMachine({ keyring: fleetPki.caCert, compatible: COMPATIBLE });
      machines.push(m);
      const args = [
        ...['agent', '--node-id', nodeId, '--data-dir', join(m.dir, 'agent'), '--slot-driver', 'rauc'],
        ...['--labels', `site=rauc,health=${health}`, '--trusted-keys', join(home, 'keys')],
        ...['--initial-version', '1.0.0'],
        ...(health === 'bad' ? ['--health-check', 'app-ready=false'] : []),
      ];
      await preauthorizeAgent(env, nodeId, join(m.dir, 'agent'));
      powerSupplies.push(powerSupply(m, nodeId, args));
    }
    const [good, bad] = machines as [RaucMachine, RaucMachine];
    await waitForFleet(env, 2);

    const build = async (version: string, pki: typeof fleetPki, compatible = COMPATIBLE) => {
      const rootfs = await writeDemoRootfs(join(home, `rootfs-${version}-${compatible}`), version);
      const r = await runCli(
        [
          ...['image', 'build', '--rootfs', rootfs, '--version', version, '--format', 'rauc'],
          ...['--rauc-compatible', compatible, '--rauc-cert', pki.cert, '--rauc-key', pki.key],
          // This host has no device-mapper, which installing a verity bundle needs.
          ...['--rauc-bundle-format', 'plain', '--json'],
        ],
        env,
        300_000,
      );
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { manifest: { digest: string; format: string } }).manifest;
    };
    // Version 2.0.0 is an OCI image; the rollout converts it and wraps it in a bundle signed by the fleet's key.
    const pushed = await pushRootfs(
      await writeDemoRootfs(join(home, 'rootfs-2.0.0-oci'), '2.0.0'),
      `${stack.registry.address}/os/rauc-demo:2.0.0`,
    );
    const asBundle = [
      ...['--format', 'rauc', '--rauc-compatible', COMPATIBLE],
      ...['--rauc-cert', fleetPki.cert, '--rauc-key', fleetPki.key, '--rauc-bundle-format', 'plain'],
    ];
    const eventsOf = async (rolloutId: string) =>
      (await runCli(['events', '--rollout', rolloutId, '--json'], env)).stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { event: Record<string, unknown> & { type: string } }).event);

    // The healthy node installs, boots the trial and commits it through RAUC.
    const ok = await rollout('rauc-ok', pushed.reference, '2.0.0', 'health=ok', asBundle);
    assert.equal(ok.status, 'succeeded');
    const okEvents = await eventsOf('rauc-ok');
    const converted = okEvents.find((e) => e.type === 'ImageConverted');
    assert.deepEqual(converted?.['bundle'], {
      compatible: COMPATIBLE,
      signer: `sha256:${createHash('sha256')
        .update(await readFile(fleetPki.cert))
        .digest('hex')}`,
    });
    const built = okEvents.find((e) => e.type === 'ImageBuilt') as
      { manifest?: { format: string } } | undefined;
    assert.equal(built?.manifest?.format, 'rauc', 'the converted image was wrapped in a bundle');
    assert.deepEqual(ok.nodes, { 'rauc-1': { ...ok.nodes['rauc-1'], state: 'upgraded' } });
    assert.deepEqual(await raucView(good), {
      booted: 'B',
      primary: 'rootfs.1',
      slots: { A: 'good -', B: 'good 2.0.0' },
    });

    // The unhealthy node boots the trial, fails its check, marks it bad through RAUC and falls back.
    const failing = await rollout('rauc-bad-health', pushed.reference, '2.0.0', 'health=bad', asBundle);
    assert.equal(failing.status, 'rolled-back');
    const failingEvents = await eventsOf('rauc-bad-health');
    assert.ok(
      !failingEvents.some((e) => e.type === 'ImageConverted'),
      'the same image and signer are not converted again',
    );
    assert.equal(
      failingEvents.find((e) => e.type === 'ImagePublished')?.['digest'],
      converted?.['digest'],
      'the second rollout installs the bundle the first one made',
    );
    assert.equal(failing.nodes['rauc-2']?.state, 'fell-back');
    assert.deepEqual(await raucView(bad), {
      booted: 'A',
      primary: 'rootfs.0',
      slots: { A: 'good -', B: 'bad 2.0.0' },
    });

    // Three bundles RAUC refuses on the upgraded node; nothing is written, its slots stay as they were.
    const untrusted = await build('3.0.0', roguePki);
    const foreign = await build('3.0.1', fleetPki, 'another-board');
    const tampered = await publishTampered(await build('3.0.2', fleetPki));
    const before = { rauc: await raucView(good), a: await readFile(good.devices.a) };
    for (const [id, digest, version, reason] of [
      [
        'rauc-untrusted',
        untrusted.digest,
        '3.0.0',
        /signature verification failed: .*unable to get local issuer certificate/,
      ],
      ['rauc-tampered', tampered, '3.0.2', /signature verification failed/],
      [
        'rauc-foreign',
        foreign.digest,
        '3.0.1',
        /Compatible mismatch: Expected 'slotflow-e2e' but bundle manifest has 'another-board'/,
      ],
    ] as const) {
      const refused = await rollout(id, digest, version, 'health=ok');
      assert.notEqual(refused.nodes['rauc-1']?.state, 'upgraded', `${id}: not upgraded`);
      const events = (await runCli(['events', '--rollout', id, '--node', 'rauc-1', '--json'], env)).stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { event: { type: string; reason?: string; message?: string } }).event);
      const rejected = events.find((e) => e.type === 'UpgradeCommandRejected');
      assert.equal(
        rejected?.reason,
        'artifact-invalid',
        `${id}: ${JSON.stringify(events.map((e) => e.type))}`,
      );
      assert.match(rejected?.message ?? '', /RAUC refused bundle/);
      assert.match(rejected?.message ?? '', reason);
      assert.ok(!events.some((e) => e.type === 'SlotWritten'), `${id}: no slot written`);
      assert.deepEqual(await raucView(good), before.rauc, `${id}: RAUC's slots unchanged`);
    }
    assert.ok((await readFile(good.devices.a)).equals(before.a), 'the passive slot was not written');

    for (const stop of powerSupplies.splice(0)) await stop();
    await group.stopAll();
  },
);

/**
 * A bundle changed after signing, published as it is (by someone who can publish but has no
 * signing key): slotflow's manifest matches the bytes, so only RAUC's signature check stands.
 */
async function publishTampered(built: { digest: string }): Promise<string> {
  const nc = await connectNats(loadConnectionConfig({ ...process.env, ...env }).nats, 'e2e-publisher');
  try {
    const os = await new Objm(nc).open(IMAGES_BUCKET);
    const original = await os.getBlob(built.digest);
    assert.ok(original, 'the signed bundle is published');
    const bytes = Buffer.from(original);
    bytes[Math.floor(bytes.length / 2)] = bytes[Math.floor(bytes.length / 2)]! ^ 0xff;
    const path = join(home, 'tampered.raucb');
    await writeFile(path, bytes);
    const manifest = await manifestOf(path, { format: 'rauc', version: '3.0.2' });
    await os.putBlob({ name: manifest.digest }, bytes);
    await os.putBlob(
      { name: `manifest/${manifest.digest}` },
      new TextEncoder().encode(JSON.stringify(manifest)),
    );
    return manifest.digest;
  } finally {
    await nc.close();
  }
}
