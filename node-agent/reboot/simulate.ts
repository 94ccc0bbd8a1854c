import { REBOOT_EXIT_CODE, type RebootDriver } from './reboot-driver.ts';

/**
 * For development and tests: the "system" process ends with REBOOT_EXIT_CODE and its supervisor
 * runs the simulated firmware over the boot-state file, then starts the system again.
 */
export function createSimulateReboot(shutdown: () => Promise<void>): RebootDriver {
  return {
    name: 'simulate',
    async reboot(): Promise<never> {
      await shutdown();
      process.exit(REBOOT_EXIT_CODE);
    },
  };
}
