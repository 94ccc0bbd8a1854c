import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { AgentConfig } from '../schema/index.ts';
import { BOOT_ID_ENV } from './boot-id.ts';
import { agentPaths } from './paths.ts';
import { REBOOT_EXIT_CODE } from './reboot/reboot-driver.ts';
import { bootFromFile } from './slot-drivers/index.ts';

/** Environment variable carrying the validated configuration to the system process. */
export const AGENT_CONFIG_ENV = 'SLOTFLOW_AGENT_CONFIG_JSON';
/** Exit code of a system process that cannot start for a reason a restart will not fix. */
export const CONFIG_EXIT_CODE = 2;

const SYSTEM_MAIN = new URL('./system-main.ts', import.meta.url);

/**
 * The `simulate` machine: this process is the power supply and firmware, its child is the booted
 * system (the agent). A reboot is the child exiting with REBOOT_EXIT_CODE; the supervisor then
 * runs the simulated firmware over the boot-state file (an armed trial boots once, otherwise the
 * committed slot) and starts the child again with a new boot id. Starting the supervisor is a
 * power-on, so killing it (and its process group) is a power loss. A crashed child is restarted
 * without a boot, like systemd restarting the agent. The child kills itself when the supervisor
 * disappears, so killing the supervisor kills the whole machine.
 */
export async function runSupervisor(config: AgentConfig, log: Logger): Promise<number> {
  const paths = agentPaths(config.dataDir);
  let child: ChildProcess | undefined;
  let stopping = false;
  let bootId = '';

  const powerOn = async () => {
    bootId = randomUUID();
    const booted = config.slotDriver === 'file' ? await bootFromFile(paths.slots) : undefined;
    log.info({ bootId, slot: booted ?? 'decided by the bootloader' }, 'booting');
  };

  // Every simulated boot starts the system anew; Node's compile cache (kept in the data dir)
  // halves the start-up work.
  const compileCache = process.env['NODE_COMPILE_CACHE'] ?? join(config.dataDir, 'cache', 'node-compile');
  const spawnSystem = (): ChildProcess =>
    fork(SYSTEM_MAIN, [], {
      env: {
        ...process.env,
        NODE_COMPILE_CACHE: compileCache,
        [AGENT_CONFIG_ENV]: JSON.stringify(config),
        [BOOT_ID_ENV]: bootId,
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    child?.kill('SIGTERM');
    setTimeout(() => child?.kill('SIGKILL'), 10_000).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  await powerOn();
  let backoff = 500;
  try {
    for (;;) {
      const startedAt = Date.now();
      child = spawnSystem();
      const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
        (resolve) => child!.once('exit', (c, s) => resolve({ code: c, signal: s })),
      );
      if (stopping) return 0;
      if (code === REBOOT_EXIT_CODE) {
        await powerOn();
        backoff = 500;
        continue;
      }
      if (code === 0) return 0;
      if (code === CONFIG_EXIT_CODE) return CONFIG_EXIT_CODE;
      if (Date.now() - startedAt > 30_000) backoff = 500;
      log.warn({ code, signal, restartInMs: backoff }, 'agent exited; restarting it');
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 10_000);
      if (stopping) return 0;
    }
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
