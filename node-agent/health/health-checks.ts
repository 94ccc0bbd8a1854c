import type { z } from 'zod';
import type { HealthCheckConfig, Slot } from '../../schema/index.ts';
import type { Runner } from '../../runtime/runner.ts';
import { bootedImage, type SlotStatus } from '../slot-drivers/driver.ts';

/** A configured health check (argv, time limit). */
export type HealthCheck = z.output<typeof HealthCheckConfig>;

/** Name of the built-in check: the node came back on the expected slot and version. */
export const BOOTED_EXPECTED = 'booted-expected-slot';

/** How the checks ended: all passed, or the first that failed and why. */
export type HealthResult =
  | { readonly ok: true; readonly checks: string[] }
  | { readonly ok: false; readonly check: string; readonly reason: string };

/** What the built-in check expects. */
export interface Expected {
  readonly slot: Slot;
  readonly version: string;
}

/** Pure: did the node come back on the expected slot and version? */
export function checkBootedExpected(
  status: SlotStatus,
  expected: Expected,
  initialVersion: string,
): HealthResult {
  const running = bootedImage(status, initialVersion);
  if (status.booted !== expected.slot) {
    return {
      ok: false,
      check: BOOTED_EXPECTED,
      reason: `booted slot ${status.booted}, expected the trial slot ${expected.slot}`,
    };
  }
  if (running.version !== expected.version) {
    return {
      ok: false,
      check: BOOTED_EXPECTED,
      reason: `slot ${status.booted} runs version ${running.version}, expected ${expected.version}`,
    };
  }
  return { ok: true, checks: [BOOTED_EXPECTED] };
}

/**
 * Runs the built-in check, then the configured checks in order (argv without a shell, each with
 * its time limit, SLOTFLOW_SLOT/SLOTFLOW_VERSION in the environment). Stops at the first failure.
 */
export async function runHealthChecks(input: {
  readonly runner: Runner;
  readonly checks: readonly HealthCheck[];
  readonly status: SlotStatus;
  readonly expected: Expected;
  readonly initialVersion: string;
}): Promise<HealthResult> {
  const builtin = checkBootedExpected(input.status, input.expected, input.initialVersion);
  if (!builtin.ok) return builtin;
  const passed = [...builtin.checks];
  for (const check of input.checks) {
    const [file, ...args] = check.command;
    const result = await input.runner.run(file!, args, {
      timeoutMs: check.timeout,
      env: { ...process.env, SLOTFLOW_SLOT: input.expected.slot, SLOTFLOW_VERSION: input.expected.version },
    });
    if (!result.ok) return { ok: false, check: check.name, reason: result.failure ?? 'failed' };
    passed.push(check.name);
  }
  return { ok: true, checks: passed };
}
