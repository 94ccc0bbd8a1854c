// A GRUB A/B machine for the grub slot driver's tests: two slot files, a real GRUB environment
// block edited with the real grub-editenv, and a kernel command line file. Only the bootloader
// itself cannot run here; `bootloader()` does what deploy/grub/grub.cfg does at power-on (the
// VM lab boots the real grub.cfg on QEMU).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execaRunner } from '../../runtime/runner.ts';
import { AgentConfig } from '../../schema/index.ts';
import { agentPaths } from '../../node-agent/paths.ts';
import { createSlotDriver, type SlotDriver } from '../../node-agent/slot-drivers/index.ts';
import { parseEditenvList } from '../../node-agent/slot-drivers/grub-env.ts';

export const GRUB_EDITENV = 'grub-editenv';

/** Why the grub tests cannot run here, or undefined when grub-editenv is installed. */
export async function grubEditenvMissing(): Promise<string | undefined> {
  const probe = await execaRunner.run(GRUB_EDITENV, ['--version'], { timeoutMs: 10_000 });
  return probe.ok
    ? undefined
    : 'grub-editenv is not installed (apt-get install grub-common; scripts/setup.sh does)';
}

/** Runs the real grub-editenv on a file and returns its output. */
export async function editenv(file: string, ...args: string[]): Promise<string> {
  const result = await execaRunner.run(GRUB_EDITENV, [file, ...args], { timeoutMs: 10_000 });
  if (!result.ok) throw new Error(`grub-editenv ${args.join(' ')} failed: ${result.failure}`);
  return result.stdout;
}

/**
 * What deploy/grub/grub.cfg does at power-on over a GRUB environment block, with grub-editenv
 * standing in for GRUB's own load_env/save_env: the first slot in ORDER that may boot (OK=1)
 * and has its try left (TRY=0) uses the try and boots. With no slot left it gives the OK slots
 * their tries back and starts over, as grub.cfg's fallback entry does. Returns the boot name.
 */
export async function grubBoot(envFile: string): Promise<'A' | 'B'> {
  for (let attempt = 0; attempt < 2; attempt++) {
    // grub.cfg's defaults for a block without state, then load_env.
    const vars = {
      ORDER: 'A B',
      A_OK: '1',
      B_OK: '0',
      A_TRY: '0',
      B_TRY: '0',
      ...parseEditenvList(await editenv(envFile, 'list')),
    };
    const pick = vars.ORDER.split(' ').find(
      (name) => (name === 'A' || name === 'B') && vars[`${name}_OK`] === '1' && vars[`${name}_TRY`] !== '1',
    ) as 'A' | 'B' | undefined;
    if (pick) {
      await editenv(envFile, 'set', `${pick}_TRY=1`); // save_env before the kernel starts
      return pick;
    }
    const reset = (['A', 'B'] as const).filter((n) => vars[`${n}_OK`] === '1').map((n) => `${n}_TRY=0`);
    if (reset.length > 0) await editenv(envFile, 'set', ...reset);
  }
  throw new Error('no slot may boot even with fresh tries (both slots have OK=0)');
}

export interface GrubMachine {
  readonly dir: string;
  readonly envFile: string;
  readonly cmdline: string;
  readonly devices: { readonly a: string; readonly b: string };
  readonly driver: SlotDriver;
  /** The environment block's variables, as grub-editenv lists them. */
  env(): Promise<Record<string, string>>;
  /** Power-on up to the kernel (grubBoot), which then runs with `rauc.slot=` of the slot it booted. */
  bootloader(): Promise<'A' | 'B'>;
  /** A full reboot: the bootloader, then the agent's start on the booted system (driver.init). */
  reboot(): Promise<void>;
  cleanup(): Promise<void>;
}

/** A fresh machine booted from slot A, with an empty environment block (grub-editenv create). */
export async function createGrubMachine(initialVersion = '1.0.0'): Promise<GrubMachine> {
  const dir = await mkdtemp(join(tmpdir(), 'slotflow-grub-'));
  const envFile = join(dir, 'esp', 'grubenv');
  const cmdline = join(dir, 'cmdline');
  const devices = { a: join(dir, 'root-a.img'), b: join(dir, 'root-b.img') };
  await mkdir(join(dir, 'esp'));
  await editenv(envFile, 'create');
  await writeFile(devices.a, 'the installed system\n');
  await writeFile(devices.b, '');
  const kernelArgs = (name: 'A' | 'B') =>
    `BOOT_IMAGE=/boot/vmlinuz root=PARTLABEL=root-${name.toLowerCase()} rauc.slot=${name} ro console=ttyS0\n`;
  await writeFile(cmdline, kernelArgs('A'));
  const dataDir = join(dir, 'data');
  const config = AgentConfig.parse({
    nodeId: 'grub-node',
    dataDir,
    slotDriver: 'grub',
    reboot: 'command',
    grub: { slots: devices, envFile, grubEditenv: GRUB_EDITENV, cmdline },
  });
  const driver = createSlotDriver(config, agentPaths(dataDir), execaRunner, async () => 'boot');
  const env = async () => parseEditenvList(await editenv(envFile, 'list'));

  async function bootloader(): Promise<'A' | 'B'> {
    const pick = await grubBoot(envFile);
    await writeFile(cmdline, kernelArgs(pick));
    return pick;
  }

  return {
    dir,
    envFile,
    cmdline,
    devices,
    driver,
    env,
    bootloader,
    async reboot() {
      await bootloader();
      await driver.init(initialVersion);
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
