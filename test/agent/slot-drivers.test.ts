import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manifestOf } from '../../activities/builders/manifest.ts';
import { execaRunner } from '../../runtime/runner.ts';
import type { Digest, RaucBundleRequest } from '../../schema/index.ts';
import { ArtifactInvalidError, SlotDriverError, SlotInUseError } from '../../node-agent/errors.ts';
import { agentPaths } from '../../node-agent/paths.ts';
import { bootFromFile, createSlotDriver, type SlotDriver } from '../../node-agent/slot-drivers/index.ts';
import { AgentConfig } from '../../schema/index.ts';
import { createFakeTools, type FakeTools } from './fakes/fake-tools.ts';
import { createGrubMachine, grubEditenvMissing } from './grub-machine.ts';
import {
  createRaucMachine,
  createRaucPki,
  raucBundle,
  raucMissing,
  type RaucMachine,
} from './rauc-machine.ts';
import { seededBytes } from './harness.ts';
import { slotDriverCompliance, type DriverHarness } from './slot-driver-compliance.ts';

async function imageFile(dir: string, version: string, seed = 1) {
  const path = join(dir, `${version}.img`);
  await writeFile(path, seededBytes(seed, 40 * 1024));
  const manifest = await manifestOf(path, { format: 'raw', version }, 8 * 1024);
  return { path, manifest };
}

function driverFor(kind: 'file' | 'kairos', dataDir: string, fakes?: FakeTools, timeout = '20s'): SlotDriver {
  const config = AgentConfig.parse({
    nodeId: 'n',
    dataDir,
    slotDriver: kind,
    tools: fakes
      ? {
          kairosAgent: fakes.bin.kairosAgent,
          grubEditenv: fakes.bin.grubEditenv,
          grubenv: fakes.grubenv,
          timeout,
        }
      : {},
  });
  return createSlotDriver(config, agentPaths(dataDir), execaRunner, async () =>
    fakes ? fakes.bootId() : 'boot-0',
  );
}

slotDriverCompliance('file', async (): Promise<DriverHarness> => {
  const dir = await mkdtemp(join(tmpdir(), 'slotflow-file-driver-'));
  const driver = driverFor('file', join(dir, 'data'));
  return {
    driver,
    reboot: async () => void (await bootFromFile(agentPaths(join(dir, 'data')).slots)),
    async image(version) {
      const { path, manifest } = await imageFile(dir, version);
      return { source: { type: 'file', path, manifest }, digest: manifest.digest as Digest };
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

// Slots are files, the environment block is real and edited by the real grub-editenv; the
// harness boots by deploy/grub/grub.cfg's rules and rewrites the kernel command line.
const grubMissing = await grubEditenvMissing();
slotDriverCompliance(
  'grub',
  async (): Promise<DriverHarness> => {
    const machine = await createGrubMachine();
    return {
      driver: machine.driver,
      reboot: () => machine.reboot(),
      async image(version) {
        const { path, manifest } = await imageFile(machine.dir, version);
        return { source: { type: 'file', path, manifest }, digest: manifest.digest as Digest };
      },
      cleanup: () => machine.cleanup(),
    };
  },
  { skip: grubMissing },
);

slotDriverCompliance('kairos', async (): Promise<DriverHarness> => {
  const fakes = await createFakeTools();
  const driver = driverFor('kairos', join(fakes.dir, 'data'), fakes);
  return {
    driver,
    reboot: () => fakes.rebootKairos(),
    async image(version) {
      const digest = `sha256:${version.replace(/\D/g, '').padEnd(64, '0')}` as Digest;
      return { source: { type: 'oci', reference: `registry.test/os:${version}`, digest }, digest };
    },
    cleanup: () => fakes.cleanup(),
  };
});

// RAUC for real: Debian's rauc as a service on a private bus, file-backed slots, RAUC's grub
// backend over a real environment block; the harness plays GRUB (grub.cfg's rules) at reboot.
const raucSkip = await raucMissing();
const pkiDir = await mkdtemp(join(tmpdir(), 'slotflow-rauc-pki-'));
after(() => rm(pkiDir, { recursive: true, force: true }));
const pki = raucSkip ? undefined : await createRaucPki(join(pkiDir, 'fleet'), 'slotflow fleet');

async function withRaucMachine(body: (m: RaucMachine) => Promise<void>): Promise<void> {
  const m = await createRaucMachine({ keyring: pki!.caCert, slotBytes: RAUC_SLOT_BYTES });
  try {
    await m.driver.init('1.0.0');
    await body(m);
  } finally {
    await m.cleanup();
  }
}

const RAUC_SLOT_BYTES = 1024 * 1024;

async function raucImage(m: RaucMachine, version: string, rauc: Partial<RaucBundleRequest> = {}) {
  const bundle = await raucBundle(m.dir, seededBytes(7, 40 * 1024), version, {
    compatible: m.compatible,
    cert: pki!.cert,
    key: pki!.key,
    ...rauc,
  });
  const manifest = await manifestOf(bundle, { format: 'rauc', version }, 8 * 1024);
  return { source: { type: 'file', path: bundle, manifest } as const, digest: manifest.digest as Digest };
}

slotDriverCompliance(
  'rauc',
  async (): Promise<DriverHarness> => {
    const m = await createRaucMachine({ keyring: pki!.caCert, slotBytes: RAUC_SLOT_BYTES });
    return {
      driver: m.driver,
      reboot: () => m.reboot(),
      image: (version) => raucImage(m, version),
      cleanup: () => m.cleanup(),
    };
  },
  { skip: raucSkip },
);

test(
  "rauc slot driver - rauc installs into the passive slot; trial, commit and rollback are RAUC's own boot state",
  { skip: raucSkip ?? false },
  async () => {
    await withRaucMachine(async (m) => {
      const img = await raucImage(m, '2.0.0');
      await m.driver.install('b', img.source, { version: '2.0.0', digest: img.digest });
      const slotB = async () => Object.values((await m.raucStatus()).slots.find((s) => 'rootfs.1' in s)!)[0]!;
      assert.equal((await slotB()).slot_status?.bundle?.version, '2.0.0', 'RAUC records the bundle version');
      assert.deepEqual(
        (await readFile(m.devices.b)).subarray(0, 40 * 1024),
        Buffer.from(seededBytes(7, 40 * 1024)),
        'slot b holds the image from the bundle',
      );
      assert.equal((await m.raucStatus()).boot_primary, 'rootfs.0', 'written, not yet armed');
      await m.driver.armTrialBoot('b');
      assert.equal((await m.raucStatus()).boot_primary, 'rootfs.1', 'armed through rauc status mark-active');
      await m.reboot();
      assert.equal((await m.raucStatus()).booted, 'B');
      assert.equal((await slotB()).boot_status, 'bad', 'the trial used its one try');
      assert.deepEqual(await m.driver.status(), {
        booted: 'b',
        primary: 'a',
        trial: true,
        next: undefined,
        slots: { a: { version: '1.0.0' }, b: { version: '2.0.0', digest: img.digest } },
      });
      await m.driver.markGood('b');
      assert.equal((await slotB()).boot_status, 'good', 'committed through rauc status mark-good');
      assert.equal((await m.raucStatus()).boot_primary, 'rootfs.1');
      await m.driver.activate('a');
      assert.equal((await m.raucStatus()).boot_primary, 'rootfs.0', 'rolled back through mark-active');
    });
  },
);

test(
  'rauc slot driver - a verity bundle installs where the kernel has device-mapper, else the failure says to build plain bundles',
  { skip: raucSkip ?? false },
  async () => {
    await withRaucMachine(async (m) => {
      const img = await raucImage(m, '2.0.0', { bundleFormat: 'verity' });
      const install = m.driver.install('b', img.source, { version: '2.0.0', digest: img.digest });
      if (
        await stat('/dev/mapper/control').then(
          () => true,
          () => false,
        )
      ) {
        await install;
        assert.equal((await m.driver.status()).slots.b?.version, '2.0.0');
      } else {
        await assert.rejects(
          install,
          (err: Error) =>
            err instanceof SlotDriverError &&
            /no device-mapper for verity bundles: .*--rauc-bundle-format plain/.test(err.message),
        );
        assert.equal((await m.driver.status()).slots.b, undefined);
      }
    });
  },
);

test(
  'rauc slot driver - a bare image, and bundles untrusted, tampered or for another compatible, are refused before anything is written',
  { skip: raucSkip ?? false },
  async () => {
    await withRaucMachine(async (m) => {
      const rogue = await createRaucPki(join(pkiDir, 'rogue'), 'rogue');
      const untrusted = await raucImage(m, '2.0.0', { cert: rogue.cert, key: rogue.key });
      const foreign = await raucImage(m, '2.0.0', { compatible: 'another-board' });
      const tampered = await raucImage(m, '2.0.0');
      const bytes = await readFile(tampered.source.path);
      bytes[20_000] = bytes[20_000]! ^ 0xff;
      await writeFile(tampered.source.path, bytes);
      const bare = await imageFile(m.dir, '2.0.0');
      const before = { rauc: await m.raucStatus(), env: await m.grubEnv(), b: await readFile(m.devices.b) };
      await assert.rejects(
        m.driver.install(
          'b',
          { type: 'file', ...bare },
          { version: '2.0.0', digest: bare.manifest.digest as Digest },
        ),
        (err: Error) =>
          err instanceof ArtifactInvalidError &&
          /installs RAUC bundles, image sha256:\w+ is a bare raw image; build it with 'slotflow image build --format rauc'/.test(
            err.message,
          ),
      );
      for (const [img, reason] of [
        [
          untrusted,
          /RAUC refused bundle .*signature verification failed: .*unable to get local issuer certificate/,
        ],
        [tampered, /RAUC refused bundle .*signature verification failed/],
        [
          foreign,
          /RAUC refused bundle .*Compatible mismatch: Expected 'slotflow-test' but bundle manifest has 'another-board'/,
        ],
      ] as const) {
        await assert.rejects(
          m.driver.install('b', img.source, { version: '2.0.0', digest: img.digest }),
          (err: Error) => err instanceof ArtifactInvalidError && reason.test(err.message),
        );
        assert.deepEqual(await m.raucStatus(), before.rauc, 'RAUC changed no slot state');
        assert.equal(await m.grubEnv(), before.env, 'the boot order is untouched');
        assert.ok((await readFile(m.devices.b)).equals(before.b), 'slot b was not written');
        assert.equal((await m.driver.status()).slots.b, undefined);
      }
    });
  },
);

test('kairos slot driver - runs kairos-agent and grub2-editenv in order for an upgrade, commit and rollback', async () => {
  const fakes = await createFakeTools();
  try {
    const driver = driverFor('kairos', join(fakes.dir, 'data'), fakes);
    await driver.init('1.0.0');
    await fakes.clearCalls();
    const digest = `sha256:${'ab'.repeat(32)}` as Digest;
    await driver.install(
      'b',
      { type: 'oci', reference: 'quay.io/kairos/os:2.0.0', digest },
      { version: '2.0.0', digest },
    );
    await driver.armTrialBoot('b');
    await fakes.rebootKairos();
    await driver.markGood('b');
    await driver.activate('a');
    const changes = (await fakes.calls()).filter(
      (c) => c[1] === 'upgrade' || (c[0] === 'grub2-editenv' && c[2] !== 'list'),
    );
    assert.deepEqual(changes, [
      ['kairos-agent', 'upgrade', '--source', `oci:quay.io/kairos/os:2.0.0@${digest}`],
      ['grub2-editenv', fakes.grubenv, 'set', 'saved_entry=fallback'],
      ['grub2-editenv', fakes.grubenv, 'set', 'next_entry=cos'],
      ['grub2-editenv', fakes.grubenv, 'set', 'saved_entry=cos'],
      ['grub2-editenv', fakes.grubenv, 'unset', 'next_entry'],
      ['grub2-editenv', fakes.grubenv, 'set', 'saved_entry=fallback'],
    ]);
  } finally {
    await fakes.cleanup();
  }
});

test('kairos slot driver - refuses an upgrade while booted from the passive entry (it would overwrite the running system)', async () => {
  const fakes = await createFakeTools();
  try {
    const driver = driverFor('kairos', join(fakes.dir, 'data'), fakes);
    await driver.init('1.0.0');
    const digest = `sha256:${'cd'.repeat(32)}` as Digest;
    await driver.install('b', { type: 'oci', reference: 'r/os:2.0.0', digest }, { version: '2.0.0', digest });
    await driver.markGood('a');
    await driver.activate('b');
    await fakes.rebootKairos(); // now on b = cos
    await driver.activate('a');
    await fakes.rebootKairos(); // now on a = fallback (passive)
    assert.equal((await driver.status()).booted, 'a');
    await fakes.clearCalls();
    await assert.rejects(
      driver.install('b', { type: 'oci', reference: 'r/os:3.0.0', digest }, { version: '3.0.0', digest }),
      (err: Error) => err instanceof SlotInUseError && /passive entry/.test(err.message),
    );
    assert.ok(!(await fakes.calls()).some((c) => c[1] === 'upgrade'), 'kairos-agent upgrade never ran');
  } finally {
    await fakes.cleanup();
  }
});

test('kairos slot driver - a failing tool is a SlotDriverError with its output, a hanging one times out', async () => {
  const fakes = await createFakeTools();
  try {
    const driver = driverFor('kairos', join(fakes.dir, 'data'), fakes, '1500ms');
    await driver.init('1.0.0');
    const digest = `sha256:${'ef'.repeat(32)}` as Digest;
    const source = { type: 'oci', reference: 'r/os:2.0.0', digest } as const;
    await fakes.failOn('upgrade');
    await assert.rejects(
      driver.install('b', source, { version: '2.0.0', digest }),
      (err: Error) =>
        err instanceof SlotDriverError &&
        /exited with code 1/.test(err.message) &&
        /simulated failure/.test(err.message),
    );
    await fakes.clearFaults();
    await fakes.hangOn('upgrade');
    const started = Date.now();
    await assert.rejects(
      driver.install('b', source, { version: '2.0.0', digest }),
      (err: Error) => err instanceof SlotDriverError && /did not finish within 1500 ms/.test(err.message),
    );
    assert.ok(Date.now() - started < 10_000);
    await fakes.clearFaults();
    assert.equal((await driver.status()).slots.b, undefined, 'a failed install leaves no image recorded');
  } finally {
    await fakes.cleanup();
  }
});

test('file slot driver - a corrupted image is refused chunk by chunk; the slot stays empty and no temp file is left', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'slotflow-file-driver-'));
  try {
    const driver = driverFor('file', join(dir, 'data'));
    await driver.init('1.0.0');
    const { path, manifest } = await imageFile(dir, '2.0.0');
    const bytes = seededBytes(1, 40 * 1024);
    bytes[20_000] = bytes[20_000]! ^ 1;
    await writeFile(path, bytes);
    await assert.rejects(
      driver.install(
        'b',
        { type: 'file', path, manifest },
        { version: '2.0.0', digest: manifest.digest as Digest },
      ),
      (err: Error) => err instanceof ArtifactInvalidError && /chunk 2 /.test(err.message),
    );
    assert.deepEqual((await readdir(join(dir, 'data', 'slots'))).sort(), ['a.json', 'boot-state.json']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
