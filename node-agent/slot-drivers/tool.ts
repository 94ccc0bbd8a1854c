import type { Runner } from '../../runtime/runner.ts';
import { SlotDriverError } from '../errors.ts';

/** Runs one external tool and returns its stdout. */
export type Tool = (file: string, args: readonly string[]) => Promise<string>;

/**
 * Runs slot tools (kairos-agent, grub2-editenv, rauc) through the injected runner with a time
 * limit; a failure becomes a SlotDriverError carrying the command line and the tool's last words.
 */
export function createTool(runner: Runner, timeoutMs: number): Tool {
  return async (file, args) => {
    const result = await runner.run(file, args, { timeoutMs });
    if (!result.ok) {
      throw new SlotDriverError(
        `'${[file, ...args].join(' ')}' failed: ${result.failure ?? 'unknown error'}`,
      );
    }
    return result.stdout;
  };
}
