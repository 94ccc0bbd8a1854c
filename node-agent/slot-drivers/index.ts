// Public surface of the slot drivers: one contract, three implementations.
import type { AgentConfig } from '../../schema/index.ts';
import type { Runner } from '../../runtime/runner.ts';
import type { AgentPaths } from '../paths.ts';
import type { SlotDriver } from './driver.ts';
import { createFileSlotDriver } from './file.ts';
import { createKairosSlotDriver } from './kairos.ts';
import { createRaucSlotDriver } from './rauc.ts';
import { createTool } from './tool.ts';

export * from './driver.ts';
export { bootFromFile, firmwareBoot, readBootState, type BootState } from './boot-state.ts';
export { createFileSlotDriver } from './file.ts';
export { createKairosSlotDriver } from './kairos.ts';
export { createRaucSlotDriver } from './rauc.ts';
export { createTool, type Tool } from './tool.ts';

/** The slot driver the configuration names. */
export function createSlotDriver(
  config: Pick<AgentConfig, 'slotDriver' | 'tools'>,
  paths: AgentPaths,
  runner: Runner,
  bootId: () => Promise<string>,
  faults: { chunkDelayMs?: number } = {},
): SlotDriver {
  const tool = createTool(runner, config.tools.timeout);
  switch (config.slotDriver) {
    case 'file':
      return createFileSlotDriver({ slotsDir: paths.slots, ...faults });
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
      return createRaucSlotDriver({ tool, rauc: config.tools.rauc, ledgerFile: paths.slotLedger });
  }
}
