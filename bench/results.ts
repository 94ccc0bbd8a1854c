// The results file `npm run bench` writes (bench/results/latest.json): the machine, every figure,
// and how long each bench took.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { describeIssues } from '../schema/index.ts';
import { Figure } from './figure.ts';
import { Machine } from './machine.ts';

export const RESULTS_FORMAT = 'slotflow-bench/1';

export const BenchRun = z.object({
  name: z.string(),
  durationMs: z.number(),
  /** Set when the bench threw; its figures are then marked failed with this message. */
  error: z.string().optional(),
});

export const Results = z.object({
  format: z.literal(RESULTS_FORMAT),
  size: z.enum(['tiny', 'quick', 'full']),
  startedAt: z.string(),
  finishedAt: z.string(),
  durationMs: z.number(),
  machine: Machine,
  figures: z.array(Figure),
  benches: z.array(BenchRun),
});
export type Results = z.infer<typeof Results>;

/** Reads and validates a results file; the error names each field that does not fit. */
export async function readResults(path: string): Promise<Results> {
  const raw: unknown = JSON.parse(await readFile(path, 'utf8'));
  const parsed = Results.safeParse(raw);
  if (!parsed.success) {
    throw new Error(
      `${path} is not a slotflow bench results file:\n  - ${describeIssues(parsed.error.issues, raw).join('\n  - ')}`,
    );
  }
  return parsed.data;
}
