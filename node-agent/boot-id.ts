import { readFile } from 'node:fs/promises';

/** Environment variable with which the simulating supervisor names each boot. */
export const BOOT_ID_ENV = 'SLOTFLOW_BOOT_ID';

/**
 * An id that changes with every boot: the supervisor's in simulation, else the kernel's. The
 * journal records it when a reboot is requested; a different id later proves the reboot happened.
 */
export async function currentBootId(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const simulated = env[BOOT_ID_ENV];
  if (simulated) return simulated;
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
}
