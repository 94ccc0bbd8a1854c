// Public surface of the slot drivers: one contract, four implementations.
import type { Logger } from 'pino';
import type { AgentConfig } from '../../schema/index.ts';
import type { Runner } from '../../runtime/runner.ts';
import type { AgentPaths } from '../paths.ts';
import type { SlotDriver } from './driver.ts';
import { createFileSlotDriver } from './file.ts';
import { createGrubSlotDriver } from './grub.ts';
import { createKairosSlotDriver } from './kairos.ts';
import { createRaucSlotDriver } from './rauc.ts';
import { createTool } from './tool.ts';

export * from './driver.ts';
export { bootFromFile, firmwareBoot, readBootState, type BootState } from './boot-state.ts';
export { createFileSlotDriver } from './file.ts';
export { createGrubSlotDriver } from './grub.ts';
export { createKairosSlotDriver } from './kairos.ts';
export { createRaucSlotDriver } from './rauc.ts';
export { createTool, type Tool } from './tool.ts';

/** grub-editenv only rewrites a 1 KiB file: a run that takes longer than this has hung. */
const GRUB_EDITENV_TIMEOUT_MS = 30_000;

/** The slot driver the configuration names. */
export function createSlotDriver(
  config: Pick<AgentConfig, 'slotDriver' | 'tools' | 'grub'>,
  paths: AgentPaths,
  runner: Runner,
  bootId: () => Promise<string>,
  faults: { chunkDelayMs?: number } = {},
  log?: Logger,
): SlotDriver {
  const tool = createTool(runner, config.tools.timeout);
  switch (config.slotDriver) {
    case 'file':
      return createFileSlotDriver({ slotsDir: paths.slots, ...faults });
    case 'grub':
      return createGrubSlotDriver({
        tool: createTool(runner, Math.min(config.tools.timeout, GRUB_EDITENV_TIMEOUT_MS)),
        grubEditenv: config.grub.grubEditenv,
        envFile: config.grub.envFile,
        devices: config.grub.slots,
        cmdline: config.grub.cmdline,
        ledgerFile: paths.slotLedger,
        log: log?.child({ name: 'agent:slot:grub' }),
      });
    case 'kairos':
      return createKairosSlotDriver({
        tool,
        kairosAgent: config.tools.kairosAgent,
        grubEditenv: config.tools.grubEditenv,
        grubenv: config.tools.grubenv,
        ledgerFile: paths.slotLedger,
        bootId,
      });
    case 'rauc':
      return createRaucSlotDriver({
        runner,
        rauc: config.tools.rauc,
        timeoutMs: config.tools.timeout,
        ledgerFile: paths.slotLedger,
      });
  }
}
