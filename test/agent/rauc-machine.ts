// A RAUC A/B machine for the rauc slot driver's tests: Debian's real rauc (1.8) as a service on a
// private D-Bus session bus, configured by the project's deploy/rauc/system.conf with test files
// in place of the devices: two file-backed slots, RAUC's grub backend over a real GRUB
// environment block (edited by the real grub-editenv), and a test PKI made with openssl. Only the
// bootloader and the kernel cannot run here: grubBoot() does what grub.cfg does at power-on, and
// the service is restarted with --override-boot-slot, standing in for rauc.slot= on the kernel
// command line.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { wrapInRaucBundle } from '../../activities/builders/rauc-bundle.ts';
import { execaRunner, type Runner } from '../../runtime/runner.ts';
import type { RaucBundleRequest } from '../../schema/index.ts';
import { createRaucSlotDriver, type SlotDriver } from '../../node-agent/slot-drivers/index.ts';
import { editenv, grubBoot, grubEditenvMissing } from './grub-machine.ts';

/** Why the rauc tests cannot run here, or undefined when rauc, dbus-daemon and grub-editenv are installed. */
export async function raucMissing(): Promise<string | undefined> {
  for (const [tool, arg, pkg] of [
    ['rauc', '--version', 'rauc'],
    ['dbus-daemon', '--version', 'dbus'],
    ['openssl', 'version', 'openssl'],
  ] as const) {
    const probe = await execaRunner.run(tool, [arg], { timeoutMs: 10_000 });
    if (!probe.ok) return `${tool} is not installed (apt-get install ${pkg}; scripts/setup.sh does)`;
  }
  return grubEditenvMissing();
}

async function must(runner: Runner, file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const result = await runner.run(file, args, { timeoutMs: 60_000, ...(env ? { env } : {}) });
  if (!result.ok) throw new Error(`${file} ${args.join(' ')} failed: ${result.failure}`);
  return result.stdout;
}

/** A CA (the machines' RAUC keyring) and a signing certificate it issued, as PEM files. */
export interface RaucPki {
  readonly caCert: string;
  readonly cert: string;
  readonly key: string;
}

/** Makes a test PKI with openssl: a CA, and a signer whose certificate the CA issued. */
export async function createRaucPki(dir: string, name: string): Promise<RaucPki> {
  await mkdir(dir, { recursive: true });
  const p = (f: string) => join(dir, f);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await must(execaRunner, 'openssl', [
    'req', '-x509', ...ec, '-keyout', p('ca.key.pem'), '-out', p('ca.cert.pem'), '-days', '30',
    '-subj', `/O=${name}/CN=${name} CA`,
    '-addext', 'basicConstraints=critical,CA:true',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]); // prettier-ignore
  await must(execaRunner, 'openssl', [
    'req', ...ec, '-keyout', p('signer.key.pem'), '-out', p('signer.csr'), '-subj', `/O=${name}/CN=${name} signer`,
  ]); // prettier-ignore
  await writeFile(p('signer.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n');
  await must(execaRunner, 'openssl', [
    'x509', '-req', '-in', p('signer.csr'), '-CA', p('ca.cert.pem'), '-CAkey', p('ca.key.pem'),
    '-CAcreateserial', '-out', p('signer.cert.pem'), '-days', '30', '-extfile', p('signer.ext'),
  ]); // prettier-ignore
  return { caCert: p('ca.cert.pem'), cert: p('signer.cert.pem'), key: p('signer.key.pem') };
}

/**
 * Wraps `image` (raw bytes) into a signed bundle with the product's bundle builder. `plain` by
 * default: installing a `verity` bundle needs the kernel's device-mapper (dm-verity), which a
 * container does not have.
 */
export async function raucBundle(
  dir: string,
  image: Uint8Array,
  version: string,
  rauc: Omit<RaucBundleRequest, 'bundleFormat' | 'slotClass'> & Partial<RaucBundleRequest>,
): Promise<string> {
  const outDir = await mkdtemp(join(dir, `bundle-${version}-`));
  const path = join(outDir, 'image.ext4');
  await writeFile(path, image);
  const out = await wrapInRaucBundle(
    { runner: execaRunner },
    { path, format: 'ext4', builder: 'test' },
    { version, outDir },
    { bundleFormat: 'plain', slotClass: 'rootfs', ...rauc },
  );
  return out.path;
}

/** RAUC's own view, from `rauc status --detailed --output-format=json`. */
export interface RaucStatusJson {
  booted: string;
  boot_primary: string | null;
  slots: Record<
    string,
    { bootname: string; state: string; boot_status: string; slot_status?: { bundle?: { version?: string } } }
  >[];
}

export interface RaucMachine {
  readonly dir: string;
  readonly compatible: string;
  readonly envFile: string;
  readonly devices: { readonly a: string; readonly b: string };
  /** The environment under which `rauc` reaches this machine's service (its session bus). */
  readonly env: NodeJS.ProcessEnv;
  /** Runs tools in `env`. */
  readonly runner: Runner;
  /** The rauc slot driver of this machine, with its ledger under `dir`. */
  readonly driver: SlotDriver;
  /** `rauc status --detailed` as RAUC reports it. */
  raucStatus(): Promise<RaucStatusJson>;
  /** The environment block's variables. */
  grubEnv(): Promise<string>;
  /** Power cut: the RAUC service stops. */
  powerOff(): Promise<void>;
  /** Power-on: GRUB picks a slot (grubBoot), RAUC starts on it. Returns the boot name. */
  powerOn(): Promise<'A' | 'B'>;
  /** powerOff, powerOn, then the agent's start (driver.init). */
  reboot(): Promise<void>;
  cleanup(): Promise<void>;
}

const DEPLOYED_SYSTEM_CONF = fileURLToPath(new URL('../../deploy/rauc/system.conf', import.meta.url));

/** The system.conf the project ships (deploy/rauc/system.conf), with this machine's files in it. */
async function testSystemConf(m: {
  compatible: string;
  envFile: string;
  dir: string;
  keyring: string;
  devices: { a: string; b: string };
}): Promise<string> {
  const swaps: [string, string][] = [
    ['compatible=slotflow-node', `compatible=${m.compatible}`],
    ['grubenv=/boot/efi/grubenv', `grubenv=${m.envFile}`],
    ['statusfile=/var/lib/rauc/central.raucs', `statusfile=${join(m.dir, 'central.raucs')}`],
    ['path=/etc/rauc/keyring.pem', `path=${m.keyring}`],
    ['device=/dev/disk/by-partlabel/root-a', `device=${m.devices.a}`],
    ['device=/dev/disk/by-partlabel/root-b', `device=${m.devices.b}`],
  ];
  let text = await readFile(DEPLOYED_SYSTEM_CONF, 'utf8');
  for (const [from, to] of swaps) {
    if (!text.includes(from))
      throw new Error(`${DEPLOYED_SYSTEM_CONF} no longer has '${from}'; update the test machine`);
    text = text.replace(from, to);
  }
  return text;
}

/** Slot files are sparse; big enough for the ext4 images the builders make in tests. */
const SLOT_BYTES = 256 * 1024 * 1024;

/** A fresh machine booted from slot A, trusting `keyring` (a CA certificate, PEM). */
export async function createRaucMachine(o: {
  keyring: string;
  compatible?: string;
  initialVersion?: string;
  slotBytes?: number;
}): Promise<RaucMachine> {
  const dir = await mkdtemp(join(tmpdir(), 'slotflow-rauc-'));
  const compatible = o.compatible ?? 'slotflow-test';
  const envFile = join(dir, 'esp', 'grubenv');
  const devices = { a: join(dir, 'root-a.img'), b: join(dir, 'root-b.img') };
  const conf = join(dir, 'system.conf');
  await mkdir(join(dir, 'esp'));
  await mkdir(join(dir, 'mnt'));
  await editenv(envFile, 'create');
  for (const device of Object.values(devices)) {
    await writeFile(device, '');
    await truncate(device, o.slotBytes ?? SLOT_BYTES);
  }
  await writeFile(conf, await testSystemConf({ compatible, envFile, dir, keyring: o.keyring, devices }));

  const bus = spawn(
    'dbus-daemon',
    ['--session', '--nofork', `--address=unix:path=${join(dir, 'bus')}`, '--print-address=1'],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const [address] = (await Promise.race([
    once(bus.stdout!, 'data'),
    once(bus, 'exit').then(() => {
      throw new Error('dbus-daemon exited before printing its address');
    }),
  ])) as [Buffer];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DBUS_SESSION_BUS_ADDRESS: address.toString().trim(),
    DBUS_STARTER_BUS_TYPE: 'session',
  };
  const runner: Runner = { run: (file, args, options) => execaRunner.run(file, args, { ...options, env }) };
  const driver = createRaucSlotDriver({
    runner,
    rauc: 'rauc',
    timeoutMs: 120_000,
    ledgerFile: join(dir, 'data', 'slot-ledger.json'),
  });

  let service: ChildProcess | undefined;
  async function powerOff(): Promise<void> {
    const s = service;
    service = undefined;
    if (!s || s.exitCode !== null || s.signalCode !== null) return;
    s.kill('SIGTERM');
    await once(s, 'exit');
  }
  async function startService(bootname: 'A' | 'B'): Promise<void> {
    service = spawn(
      'rauc',
      ['service', `--conf=${conf}`, `--mount=${join(dir, 'mnt')}`, `--override-boot-slot=${bootname}`],
      { env, stdio: 'ignore' },
    );
    // The service owns its bus name a moment after it starts; until then the client cannot reach it.
    for (let attempt = 0; ; attempt++) {
      const probe = await runner.run('rauc', ['status', '--output-format=json'], { timeoutMs: 10_000 });
      if (probe.ok) return;
      if (attempt >= 100 || service.exitCode !== null)
        throw new Error(`rauc service did not come up: ${probe.failure}`);
      await sleep(100);
    }
  }
  await startService('A');

  const machine: RaucMachine = {
    dir,
    compatible,
    envFile,
    devices,
    env,
    runner,
    driver,
    async raucStatus() {
      return JSON.parse(
        await must(runner, 'rauc', ['status', '--detailed', '--output-format=json'], env),
      ) as RaucStatusJson;
    },
    grubEnv: () => editenv(envFile, 'list'),
    powerOff,
    async powerOn() {
      const bootname = await grubBoot(envFile);
      await startService(bootname);
      return bootname;
    },
    async reboot() {
      await powerOff();
      await machine.powerOn();
      await driver.init(o.initialVersion ?? '1.0.0');
    },
    async cleanup() {
      await powerOff();
      bus.kill('SIGTERM');
      if (bus.exitCode === null && bus.signalCode === null) await once(bus, 'exit');
      await rm(dir, { recursive: true, force: true });
    },
  };
  return machine;
}
