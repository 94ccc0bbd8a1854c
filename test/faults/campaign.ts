// What every fault campaign shares: its settings from the environment (count, seed, report
// file), a seeded random source so a seed replays the same campaign, and the JSON report.
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { seededRandom } from '../../lab/power-cut.ts';

const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));

/** One campaign's settings. */
export interface CampaignSettings {
  readonly name: string;
  /** How many faults to inject. */
  readonly faults: number;
  readonly seed: number;
  /** Where the JSON report goes. */
  readonly report: string;
}

/** A whole number (at least `min`) from the environment; unset or empty gives `fallback`. */
export function wholeNumberEnv(
  key: string,
  fallback: number,
  min = 0,
  env: NodeJS.ProcessEnv = process.env,
): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min) {
    throw new Error(`${key} wants a whole number of at least ${min}, got '${raw}'; unset it for the default`);
  }
  return Number(raw);
}

/**
 * Reads `<PREFIX>S` (fault count), `<PREFIX>_SEED` and `<PREFIX>_REPORT` from the environment
 * (scripts/soak.sh sets them); unset, the suite's short sample runs with a fresh seed.
 */
export function campaignSettings(
  name: string,
  prefix: string,
  defaultFaults: number,
  env: NodeJS.ProcessEnv = process.env,
): CampaignSettings {
  const faults = wholeNumberEnv(`${prefix}S`, defaultFaults, 1, env);
  const seed = wholeNumberEnv(`${prefix}_SEED`, Math.floor(Math.random() * 2 ** 31), 0, env);
  const report = env[`${prefix}_REPORT`] || join(OUTPUT, `${name}-${seed}.json`);
  return { name, faults, seed, report };
}

/** A seeded random source with the helpers campaigns use. */
export interface Dice {
  /** A float in [0, 1). */
  next(): number;
  /** A whole number in [min, max]. */
  between(min: number, max: number): number;
  /** Shuffled copy. */
  shuffle<T>(items: readonly T[]): T[];
}

export function dice(seed: number): Dice {
  const next = seededRandom(seed);
  return {
    next,
    between: (min, max) => min + Math.floor(next() * (max - min + 1)),
    shuffle(items) {
      const out = [...items];
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
    },
  };
}

/** The host's load, for the report: a figure means little without it. */
export function hostLoad(): { load1: number; load5: number; load15: number } {
  const [load1, load5, load15] = loadavg().map((l) => Math.round(l * 100) / 100);
  return { load1: load1!, load5: load5!, load15: load15! };
}

/** Writes the campaign's report (pretty JSON) and returns its path. */
export async function writeReport(file: string, report: unknown): Promise<string> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}

/**
 * Polls until the probe returns a value (errors count as "not yet"), or undefined when the time
 * passes first.
 */
export async function poll<T>(
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
  everyMs = 100,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) return undefined;
    await sleep(everyMs);
  }
}
