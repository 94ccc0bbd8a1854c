import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { launchServer, LaunchMode, logTail, type LaunchedServer } from '../stack/server-process.ts';
import { signal, waitForExit } from '../stack/pids.ts';
import { pollConsole, readConsole } from './console.ts';
import { LabVmError } from './errors.ts';

/** The QEMU binary the lab runs (package qemu-system-x86). */
export const QEMU = 'qemu-system-x86_64';
/** OVMF firmware code and the template of its variable store (package ovmf). */
export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';

/** The guest address that QEMU's user-mode network forwards to host ports (guestfwd). */
export const GUEST_GATEWAY_HOST = '10.0.2.100';

/** A guest TCP address forwarded to a host loopback port: the guest dials 10.0.2.100:guestPort. */
export interface GuestForward {
  readonly guestPort: number;
  readonly hostPort: number;
}

/** A host loopback port forwarded into the guest. */
export interface HostForward {
  readonly hostPort: number;
  readonly guestPort: number;
}

/** What a lab VM is made of. */
export interface VmSpec {
  readonly name: string;
  /** The VM's own disk image (a clone of a lab disk); written by the guest. */
  readonly disk: string;
  /** Work directory: firmware variables, console log, QEMU's own log. */
  readonly dir: string;
  readonly memoryMiB?: number;
  readonly guestForwards?: readonly GuestForward[];
  readonly hostForwards?: readonly HostForward[];
}

/** A running (or powered-off) lab VM. */
export interface LabVm {
  readonly name: string;
  /** Everything the guest wrote to its serial console, across power cycles. */
  readonly consoleLog: string;
  /** QEMU's pid while powered on. */
  readonly pid: number | undefined;
  /** True while QEMU runs. */
  readonly running: boolean;
  /** The console text from `offset` on. */
  console(offset?: number): Promise<string>;
  /**
   * Waits until the console shows `pattern` at or after `offset`; throws LabVmError when it does
   * not within `timeoutMs` or QEMU exits first, quoting the console's last lines.
   */
  waitFor(
    pattern: RegExp,
    o: { timeoutMs: number; offset?: number },
  ): Promise<{ match: RegExpExecArray; offset: number }>;
  /** Cuts the power: SIGKILLs QEMU, as pulling the plug would. */
  powerCut(): Promise<void>;
  /** Powers on again (same disk, same firmware variables, same console log). */
  powerOn(): Promise<void>;
  /** Powers off for good; idempotent, safe on every path. */
  stop(): Promise<void>;
}

/** QEMU's command line for a spec: TCG, OVMF, one virtio disk, user-mode network, serial to a file. */
export function qemuArgs(spec: VmSpec, varsFile: string, consoleLog: string): string[] {
  const fwd = [
    ...(spec.guestForwards ?? []).map(
      // One relay per guest connection (a `tcp:` chardev would connect once, at start-up only).
      (f) => `guestfwd=tcp:${GUEST_GATEWAY_HOST}:${f.guestPort}-cmd:socat - TCP:127.0.0.1:${f.hostPort}`,
    ),
    ...(spec.hostForwards ?? []).map((f) => `hostfwd=tcp:127.0.0.1:${f.hostPort}-:${f.guestPort}`),
  ];
  return [
    '-name',
    spec.name,
    '-accel',
    'tcg',
    '-machine',
    'q35',
    '-cpu',
    'max',
    '-smp',
    '1',
    '-m',
    String(spec.memoryMiB ?? 768),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-drive',
    `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
    '-drive',
    `if=pflash,format=raw,unit=1,file=${varsFile}`,
    '-drive',
    `if=none,id=disk0,format=raw,file=${spec.disk}`,
    '-device',
    'virtio-blk-pci,drive=disk0,bootindex=0',
    '-netdev',
    ['user', 'id=net0', 'restrict=on', ...fwd].join(','),
    '-device',
    'virtio-net-pci,netdev=net0,romfile=',
    '-chardev',
    `file,id=console0,path=${consoleLog},append=on`,
    '-serial',
    'chardev:console0',
  ];
}

/**
 * Powers on a lab VM under QEMU (TCG: KVM guests do not run reliably on the lab's hosts). QEMU is
 * tethered to this process: it dies with it, even when this process is SIGKILLed.
 */
export async function startVm(spec: VmSpec): Promise<LabVm> {
  await mkdir(spec.dir, { recursive: true });
  const varsFile = join(spec.dir, 'OVMF_VARS.fd');
  const consoleLog = join(spec.dir, 'console.log');
  const qemuLog = join(spec.dir, 'qemu.log');
  try {
    await copyFile(OVMF_VARS, varsFile);
  } catch (err) {
    throw new LabVmError(`expected OVMF's variable store at ${OVMF_VARS}; install ovmf`, { cause: err });
  }
  let server: LaunchedServer | undefined;
  let stopped = false;

  const powerOn = async () => {
    if (server) return;
    server = await launchServer(
      {
        name: `lab VM ${spec.name}`,
        binary: QEMU,
        args: qemuArgs(spec, varsFile, consoleLog),
        logFile: qemuLog,
        ports: [],
        probe: async () => undefined,
        startTimeoutMs: 10_000,
      },
      LaunchMode.tethered,
    ).catch((err: unknown) => {
      throw new LabVmError(
        `cannot start ${QEMU} for ${spec.name}: ${(err as Error).message}; install qemu-system-x86`,
        {
          cause: err,
        },
      );
    });
    const launched = server;
    void launched.exited.then(() => {
      if (server === launched) server = undefined;
    });
  };

  const powerOff = async () => {
    const running = server;
    if (!running) return;
    // SIGKILL, not SIGTERM: the guest gets no chance to flush anything, as with a power cut.
    signal(running.pid, 'SIGKILL');
    if (!(await waitForExit(running.pid, 15_000))) {
      throw new LabVmError(`VM ${spec.name}: QEMU pid ${running.pid} still runs 15 s after SIGKILL`);
    }
    server = undefined;
  };

  const vm: LabVm = {
    name: spec.name,
    consoleLog,
    get pid() {
      return server?.pid;
    },
    get running() {
      return server !== undefined;
    },
    console: (offset = 0) => readConsole(consoleLog, offset),
    async waitFor(pattern, o) {
      const found = await pollConsole(consoleLog, pattern, {
        offset: o.offset ?? 0,
        timeoutMs: o.timeoutMs,
        stop: () => server === undefined,
      });
      if (found) return found;
      const state = server ? `still running after ${Math.round(o.timeoutMs / 1000)} s` : 'QEMU has exited';
      const tail = (await readConsole(consoleLog, o.offset ?? 0)).split('\n').slice(-15).join('\n');
      throw new LabVmError(
        `VM ${spec.name}: expected the console to show ${pattern}, ${state}; console ${consoleLog} ends with:\n${tail}` +
          `\nQEMU's log ends with:\n${await logTail(qemuLog, 0, 5)}`,
      );
    },
    powerCut: powerOff,
    async powerOn() {
      if (stopped) throw new LabVmError(`VM ${spec.name} was stopped; start a new one`);
      await powerOn();
    },
    async stop() {
      stopped = true;
      await powerOff();
    },
  };
  await powerOn();
  return vm;
}
