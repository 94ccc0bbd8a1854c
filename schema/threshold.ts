import { z } from 'zod';

/** How many failed nodes a rollout tolerates: an absolute count or a percentage of nodes executed. */
export const Threshold = z.union([
  z.discriminatedUnion('type', [
    z.object({ type: z.literal('count'), count: z.number().int().nonnegative() }),
    z.object({ type: z.literal('percent'), percent: z.number().min(0).max(100) }),
  ]),
  z.string().transform((text, ctx) => {
    const m = /^\s*(?:(\d+)|(\d+(?:\.\d+)?)%)\s*$/.exec(text);
    if (!m) {
      ctx.addIssue({
        code: 'custom',
        message: 'expected a failure threshold such as 3 (nodes) or 10% (of nodes executed)',
      });
      return z.NEVER;
    }
    if (m[1] !== undefined) return { type: 'count' as const, count: Number(m[1]) };
    const percent = Number(m[2]);
    if (percent > 100) {
      ctx.addIssue({ code: 'custom', message: 'expected a percentage between 0% and 100%' });
      return z.NEVER;
    }
    return { type: 'percent' as const, percent };
  }),
]);
export type Threshold = z.output<typeof Threshold>;

/** True when `failed` out of `executed` nodes is more than the threshold allows. */
export function thresholdBreached(threshold: Threshold, failed: number, executed: number): boolean {
  if (threshold.type === 'count') return failed > threshold.count;
  if (executed === 0) return false;
  return (failed / executed) * 100 > threshold.percent;
}
