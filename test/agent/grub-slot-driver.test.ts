// The grub slot driver against the real grub-editenv: what the environment block holds after each
// step, what GRUB then boots, and that the grub.cfg the project ships parses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { manifestOf } from '../../activities/builders/manifest.ts';
import { execaRunner } from '../../runtime/runner.ts';
import type { Digest } from '../../schema/index.ts';
import { ArtifactInvalidError, SlotDriverError, SlotInUseError } from '../../node-agent/errors.ts';
import { bootedSlotFromCmdline } from '../../node-agent/slot-drivers/kernel-cmdline.ts';
import { createGrubMachine, grubEditenvMissing, type GrubMachine } from './grub-machine.ts';
import { seededBytes } from './harness.ts';
import { scratchDir } from './scratch.ts';

const skip = (await grubEditenvMissing()) ?? false;
const GRUB_CFG = fileURLToPath(new URL('../../deploy/grub/grub.cfg', import.meta.url));

async function withMachine(body: (m: GrubMachine) => Promise<void>): Promise<void> {
  const m = await createGrubMachine();
  try {
    await m.driver.init('1.0.0');
    await body(m);
  } finally {
    await m.cleanup();
  }
}

async function install(m: GrubMachine, version: string, seed = 7) {
  const path = join(m.dir, `${version}.img`);
  const bytes = seededBytes(seed, 48 * 1024);
  await writeFile(path, bytes);
  const manifest = await manifestOf(path, { format: 'raw', version }, 8 * 1024);
  await m.driver.install(
    'b',
    { type: 'file', path, manifest },
    { version, digest: manifest.digest as Digest },
  );
  return bytes;
}

const protocol = (vars: Record<string, string>) => ({
  ORDER: vars['ORDER'],
  A_OK: vars['A_OK'],
  B_OK: vars['B_OK'],
  A_TRY: vars['A_TRY'],
  B_TRY: vars['B_TRY'],
});

test(
  'grub slot driver - a fresh environment block gets slot A first and B not bootable',
  { skip },
  async () => {
    await withMachine(async (m) => {
      assert.deepEqual(protocol(await m.env()), {
        ORDER: 'A B',
        A_OK: '1',
        B_OK: '0',
        A_TRY: '0',
        B_TRY: '0',
      });
    });
  },
);

test(
  'grub slot driver - an uncommitted trial is booted once, then passed over for good',
  { skip },
  async () => {
    await withMachine(async (m) => {
      const bytes = await install(m, '2.0.0');
      assert.deepEqual(await readFile(m.devices.b), bytes, 'slot b holds the image byte for byte');
      assert.equal((await m.env())['B_OK'], '0', 'a written slot does not boot before it is armed');

      await m.driver.armTrialBoot('b');
      assert.deepEqual(protocol(await m.env()), {
        ORDER: 'B A',
        A_OK: '1',
        B_OK: '1',
        A_TRY: '0',
        B_TRY: '0',
      });
      assert.equal((await m.driver.status()).next, 'b');

      assert.equal(await m.bootloader(), 'B');
      await m.driver.init('1.0.0'); // the agent starts on the trial and must not confirm it
      assert.deepEqual(protocol(await m.env()), {
        ORDER: 'B A',
        A_OK: '1',
        B_OK: '1',
        A_TRY: '0',
        B_TRY: '1',
      });
      const trial = await m.driver.status();
      assert.deepEqual([trial.booted, trial.trial, trial.primary], ['b', true, 'a']);

      // The trial never commits (health checks failed, or the system hung): B used its try.
      assert.equal(await m.bootloader(), 'A');
      await m.driver.init('1.0.0');
      assert.deepEqual(protocol(await m.env()), {
        ORDER: 'B A',
        A_OK: '1',
        B_OK: '1',
        A_TRY: '0',
        B_TRY: '1',
      });
      const back = await m.driver.status();
      assert.deepEqual([back.booted, back.trial, back.primary, back.next], ['a', false, 'a', undefined]);
      assert.equal(await m.bootloader(), 'A', 'B is not booted again');
      await m.driver.init('1.0.0');

      await m.driver.markBad('b');
      assert.deepEqual(protocol(await m.env()), {
        ORDER: 'A B',
        A_OK: '1',
        B_OK: '0',
        A_TRY: '0',
        B_TRY: '1',
      });
      assert.equal((await m.driver.status()).slots.b?.bad, true);
      assert.equal(await m.bootloader(), 'A');
    });
  },
);

test('grub slot driver - a commit gives the try back and keeps the slot first', { skip }, async () => {
  await withMachine(async (m) => {
    await install(m, '2.0.0');
    await m.driver.armTrialBoot('b');
    await m.reboot();
    await m.driver.markGood('b');
    assert.deepEqual(protocol(await m.env()), { ORDER: 'B A', A_OK: '1', B_OK: '1', A_TRY: '0', B_TRY: '0' });
    const s = await m.driver.status();
    assert.deepEqual([s.booted, s.trial, s.primary], ['b', false, 'b']);
    // Every boot of the committed slot uses its try; the agent's start gives it back.
    assert.equal(await m.bootloader(), 'B');
    assert.equal((await m.env())['B_TRY'], '1');
    await m.driver.init('1.0.0');
    assert.equal((await m.env())['B_TRY'], '0');
    assert.equal(await m.bootloader(), 'B');
  });
});

test(
  'grub slot driver - a committed kernel that never reaches userspace falls back on its own',
  { skip },
  async () => {
    await withMachine(async (m) => {
      await install(m, '2.0.0');
      await m.driver.armTrialBoot('b');
      await m.reboot();
      await m.driver.markGood('b');
      assert.equal(await m.bootloader(), 'B'); // the kernel panics: no agent, nobody gives the try back
      assert.equal(await m.bootloader(), 'A');
      await m.driver.init('1.0.0');
      const s = await m.driver.status();
      assert.deepEqual([s.booted, s.trial, s.primary], ['a', false, 'a']);
      assert.equal((await m.env())['A_TRY'], '0', 'the running fallback confirmed its boot');
      assert.equal(await m.bootloader(), 'A', 'and keeps booting');
    });
  },
);

test(
  'grub slot driver - refuses to write the booted or the committed slot; a corrupt image leaves the slot empty',
  { skip },
  async () => {
    await withMachine(async (m) => {
      await install(m, '2.0.0');
      await m.driver.armTrialBoot('b');
      await m.reboot(); // on trial in b; a is the committed slot to fall back to
      const img = join(m.dir, 'x.img');
      await writeFile(img, seededBytes(3, 16 * 1024));
      const manifest = await manifestOf(img, { format: 'raw', version: '3.0.0' }, 8 * 1024);
      const source = { type: 'file', path: img, manifest } as const;
      const opts = { version: '3.0.0', digest: manifest.digest as Digest };
      const a = await readFile(m.devices.a);
      await assert.rejects(m.driver.install('b', source, opts), /node booted from it/);
      await assert.rejects(
        m.driver.install('a', source, opts),
        (err: Error) => err instanceof SlotInUseError && /falls back to/.test(err.message),
      );
      assert.deepEqual(await readFile(m.devices.a), a);

      await m.driver.markBad('b');
      await m.driver.activate('a');
      await m.reboot();
      const bytes = seededBytes(3, 16 * 1024);
      bytes[9_000] = bytes[9_000]! ^ 1;
      await writeFile(img, bytes);
      await assert.rejects(
        m.driver.install('b', source, opts),
        (err: Error) => err instanceof ArtifactInvalidError && /chunk 1 /.test(err.message),
      );
      assert.equal((await m.driver.status()).slots.b, undefined, 'no image recorded');
      assert.equal((await m.env())['B_OK'], '0');
      await assert.rejects(m.driver.armTrialBoot('b'), SlotInUseError);

      await rm(m.devices.b);
      await writeFile(img, seededBytes(3, 16 * 1024));
      await assert.rejects(
        m.driver.install('b', source, opts),
        (err: Error) =>
          err instanceof SlotDriverError && /device .*root-b\.img does not exist/.test(err.message),
      );
      await assert.rejects(readFile(m.devices.b), /ENOENT/, 'a missing device is not created as a file');
    });
  },
);

test(
  'grub slot driver - refuses to start without the environment block instead of creating one GRUB never reads',
  { skip },
  async () => {
    const m = await createGrubMachine();
    try {
      await rm(m.envFile);
      await assert.rejects(
        m.driver.init('1.0.0'),
        (err: Error) =>
          err instanceof SlotDriverError && err.message.includes(`grub-editenv ${m.envFile} create`),
      );
      await assert.rejects(readFile(m.envFile), /ENOENT/);
    } finally {
      await m.cleanup();
    }
  },
);

test('grub slot driver - the booted slot comes from rauc.slot=, else from the root= device', async () => {
  const dir = await scratchDir('slotflow-cmdline-');
  const file = join(dir, 'cmdline');
  const devices = { a: '/dev/disk/by-partlabel/root-a', b: '/dev/disk/by-partlabel/root-b' };
  await writeFile(file, 'BOOT_IMAGE=/boot/vmlinuz root=PARTLABEL=root-a rauc.slot=B ro\n');
  assert.equal(await bootedSlotFromCmdline(file, devices), 'b');
  await writeFile(file, 'BOOT_IMAGE=/boot/vmlinuz root=PARTLABEL=root-b ro quiet\n');
  assert.equal(await bootedSlotFromCmdline(file, devices), 'b');
  await writeFile(file, 'root=PARTLABEL=root-a\n');
  assert.equal(await bootedSlotFromCmdline(file, devices), 'a');
  await writeFile(file, 'root=/dev/sda9 ro\n');
  await assert.rejects(bootedSlotFromCmdline(file, devices), /no rauc\.slot=A\|B and its root=\/dev\/sda9/);
  await writeFile(file, 'rauc.slot=R\n');
  await assert.rejects(bootedSlotFromCmdline(file, devices), /expected rauc\.slot=A or B/);
});

const scriptCheckMissing = async () =>
  (await execaRunner.run('grub-script-check', ['--version'], { timeoutMs: 10_000 })).ok
    ? false
    : 'grub-script-check is not installed (apt-get install grub-common)';

test(
  'grub.cfg - the shipped boot selection parses with grub-script-check; a broken copy does not',
  { skip: await scriptCheckMissing() },
  async () => {
    const check = (file: string) => execaRunner.run('grub-script-check', [file], { timeoutMs: 10_000 });
    const shipped = await check(GRUB_CFG);
    assert.ok(shipped.ok, shipped.failure);
    const dir = await scratchDir('slotflow-grubcfg-');
    const broken = join(dir, 'grub.cfg');
    await copyFile(GRUB_CFG, broken);
    await writeFile(broken, (await readFile(broken, 'utf8')).replace(/\nfi\n/, '\n'));
    assert.equal((await check(broken)).ok, false);
  },
);

test('grub.cfg - keeps to the protocol the driver writes', async () => {
  const text = await readFile(GRUB_CFG, 'utf8');
  assert.match(text, /^load_env --file "\$\{slotflow_grubenv\}" ORDER A_OK B_OK A_TRY B_TRY$/m);
  assert.match(text, /^ {2}save_env --file "\$\{slotflow_grubenv\}" A_TRY B_TRY$/m);
  assert.match(text, /root=PARTLABEL=\$\{slotflow_label\} rauc\.slot=\$\{1\}/);
  for (const v of ['slotflow_disk', 'slotflow_esp', 'slotflow_part_A', 'slotflow_part_B'])
    assert.match(text, new RegExp(`^set ${v}=`, 'm'));
});
