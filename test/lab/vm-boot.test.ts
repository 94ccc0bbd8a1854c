// The VM lab's proof of the GRUB A/B protocol on a real (emulated) machine: OVMF, GRUB, the
// Debian kernel and real reboots. The guest's boot probe arms a trial of root-b with
// grub-editenv, as the agent's grub slot driver does, and reboots; the trial never commits, so
// GRUB's boot counting must bring the machine back to root-a.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labMissing } from './lab-missing.ts';
import { bootsIn, buildLabDisk, cloneDisk, readDiskGrubenv, startVm, type LabVm } from '../../lab/index.ts';

// A boot takes 20 s on an idle host and over 90 s on a busy shared one (the menu, kernel and init
// under TCG).
const BOOT_TIMEOUT_MS = 180_000;

describe('vm lab - GRUB A/B boot on QEMU', async () => {
  const missing = await labMissing();
  const dir = await mkdtemp(join(tmpdir(), 'slotflow-vm-boot-'));
  let vm: LabVm | undefined;
  after(async () => {
    await vm?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test(
    'a trial boot of root-b that never commits falls back to root-a',
    { skip: missing, timeout: 400_000 },
    async () => {
      const disk = await buildLabDisk();
      process.stderr.write(
        `lab disk ${disk.cached ? 'from the cache' : 'built'} in ${disk.seconds.toFixed(1)} s\n`,
      );
      const image = join(dir, 'disk.img');
      await cloneDisk(disk, image, {
        'lab/lab.env': 'LAB_SERVICE=probe\n',
        // Boot 1 (A): commit A, arm B, reboot. Boot 2 (B, on trial): reboot without committing.
        // Boot 3 (A again, by GRUB's boot counting): commit A.
        'lab/plan': 'commit arm-B reboot\nreboot\ncommit\n',
      });

      const seconds: number[] = [];
      let since = Date.now();
      const boot = async (vmNow: LabVm, slot: string, offset: number) => {
        const seen = await vmNow.waitFor(new RegExp(`slotflow-lab: booted slot ${slot}`), {
          offset,
          timeoutMs: BOOT_TIMEOUT_MS,
        });
        seconds.push((Date.now() - since) / 1000);
        process.stderr.write(`boot ${seconds.length}: slot ${slot} in ${seconds.at(-1)!.toFixed(1)} s\n`);
        return seen.offset;
      };
      const reboot = async (vmNow: LabVm, offset: number) => {
        const seen = await vmNow.waitFor(/slotflow-lab: rebooting/, { offset, timeoutMs: 60_000 });
        since = Date.now();
        return seen.offset + 1;
      };

      vm = await startVm({ name: 'vm-boot', disk: image, dir: join(dir, 'vm') });
      let at = await boot(vm, 'A', 0);
      await vm.waitFor(/slotflow-lab: armed a trial boot of slot B/, { offset: at, timeoutMs: 60_000 });
      at = await reboot(vm, at);

      at = await boot(vm, 'B', at);
      // The probe prints the environment GRUB left before it acts: B is on trial (B_TRY=1).
      await vm.waitFor(/slotflow-lab: grubenv /, { offset: at, timeoutMs: 60_000 });
      const trial = await vm.console(at);
      assert.match(trial, /cmdline .*root=PARTLABEL=root-b rauc\.slot=B/, 'the kernel booted root-b');
      assert.match(trial, /grubenv A_OK=1 A_TRY=0 B_OK=1 B_TRY=1 ORDER=B A/, 'GRUB counted the trial');
      at = await reboot(vm, at);

      at = await boot(vm, 'A', at);
      await vm.waitFor(/slotflow-lab: probe done/, { offset: at, timeoutMs: 60_000 });
      const fallback = await vm.console(at);
      assert.match(fallback, /cmdline .*root=PARTLABEL=root-a rauc\.slot=A/);
      await vm.stop();

      const log = await vm.console();
      assert.deepEqual(
        bootsIn(log).map((b) => b.slot),
        ['A', 'B', 'A'],
        'three boots: A, the trial of B, back to A',
      );
      assert.deepEqual(
        [...log.matchAll(/slotflow: booting slot (\w) from hd0,gpt(\d)/g)].map((m) => `${m[1]}:${m[2]}`),
        ['A:2', 'B:3', 'A:2'],
        "the project's grub.cfg chose each slot and its partition",
      );
      const env = await readDiskGrubenv(image, disk.partitions);
      assert.deepEqual(
        {
          ORDER: env['ORDER'],
          A_OK: env['A_OK'],
          A_TRY: env['A_TRY'],
          B_OK: env['B_OK'],
          B_TRY: env['B_TRY'],
        },
        { ORDER: 'B A', A_OK: '1', A_TRY: '0', B_OK: '1', B_TRY: '1' },
        'the failed trial stays marked on the disk: B is skipped until it is armed again',
      );
      process.stderr.write(`boot seconds: ${seconds.map((s) => s.toFixed(1)).join(', ')}\n`);
    },
  );

  test(
    'a power cut during a trial boot of root-b falls back to root-a',
    { skip: missing, timeout: 400_000 },
    async () => {
      const disk = await buildLabDisk();
      const image = join(dir, 'power-cut.img');
      await cloneDisk(disk, image, {
        'lab/lab.env': 'LAB_SERVICE=probe\n',
        // Boot 1 (A): commit A and arm B, then the power goes. Boot 2 (B, on trial): nothing, and
        // the power goes again. Boot 3: A, by GRUB's boot counting.
        'lab/plan': 'commit arm-B\n\ncommit\n',
      });
      vm = await startVm({ name: 'vm-power-cut', disk: image, dir: join(dir, 'power-cut') });
      const cycle = async (slot: string, offset: number) => {
        const started = Date.now();
        const booted = await vm!.waitFor(new RegExp(`slotflow-lab: booted slot ${slot}`), {
          offset,
          timeoutMs: BOOT_TIMEOUT_MS,
        });
        const done = await vm!.waitFor(/slotflow-lab: probe done/, {
          offset: booted.offset,
          timeoutMs: 60_000,
        });
        process.stderr.write(
          `power-cut run: slot ${slot} up in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
        );
        return { booted: booted.offset, next: done.offset + 1 };
      };
      let at = (await cycle('A', 0)).next;
      await vm.powerCut();
      await vm.powerOn();
      const trial = await cycle('B', at);
      at = trial.next;
      assert.match(await vm.console(trial.booted), /grubenv A_OK=1 A_TRY=0 B_OK=1 B_TRY=1 ORDER=B A/);
      await vm.powerCut();
      await vm.powerOn();
      await cycle('A', at);
      await vm.stop();
      assert.deepEqual(
        bootsIn(await vm.console()).map((b) => b.slot),
        ['A', 'B', 'A'],
      );
      const env = await readDiskGrubenv(image, disk.partitions);
      assert.equal(env['B_TRY'], '1', 'the cut-off trial stays used up');
      assert.equal(env['A_TRY'], '0', 'slot A committed again');
    },
  );
});
