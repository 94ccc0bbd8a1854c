import { setTimeout as sleep } from 'node:timers/promises';
import type { Runner } from '../../runtime/runner.ts';
import { RebootError } from '../errors.ts';
import type { RebootDriver } from './reboot-driver.ts';

export interface CommandRebootOptions {
  readonly runner: Runner;
  /** e.g. ['systemctl', 'reboot']. */
  readonly argv: readonly string[];
  /** How long the machine may keep running after the command before it counts as failed. */
  readonly timeoutMs: number;
  /** Runs before the command (flush the outbox, close connections). */
  readonly beforeReboot?: () => Promise<void>;
}

/** Reboots the real machine with a command such as `systemctl reboot`. */
export function createCommandReboot(o: CommandRebootOptions): RebootDriver {
  const [file, ...args] = o.argv;
  return {
    name: 'command',
    async reboot(): Promise<never> {
      if (!file)
        throw new RebootError(
          'no reboot command configured; set rebootCommand, e.g. ["systemctl", "reboot"]',
        );
      await o.beforeReboot?.();
      const result = await o.runner.run(file, args, { timeoutMs: 60_000 });
      if (!result.ok) {
        throw new RebootError(`'${o.argv.join(' ')}' failed: ${result.failure ?? 'unknown error'}`);
      }
      // systemctl returns at once and the shutdown follows; the machine should be gone by then.
      await sleep(o.timeoutMs);
      throw new RebootError(
        `'${o.argv.join(' ')}' succeeded but the machine still runs after ${Math.round(o.timeoutMs / 1000)} s`,
      );
    },
  };
}
