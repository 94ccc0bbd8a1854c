import { z } from 'zod';

/**
 * One wave's cumulative reach: by the end of the wave, `count` nodes or `percent` % of the
 * target set have been upgraded. `1,10%,50%,100%` is a canary of one node, then 10 %, 50 %, all.
 */
export const WaveStep = z.discriminatedUnion('type', [
  z.object({ type: z.literal('count'), count: z.number().int().min(1, 'expected at least 1 node') }),
  z.object({
    type: z.literal('percent'),
    percent: z.number().gt(0, 'expected a percentage above 0').max(100, 'expected at most 100%'),
  }),
]);
export type WaveStep = z.infer<typeof WaveStep>;

const STEP_TEXT = /^(?:(\d+)|(\d+(?:\.\d+)?)%)$/;

/** Parses `1,10%,50%,100%` into wave steps; returns an error message when malformed. */
export function parseWaves(text: string): WaveStep[] | string {
  const parts = text.split(',').map((p) => p.trim());
  const steps: WaveStep[] = [];
  for (const part of parts) {
    const m = STEP_TEXT.exec(part);
    if (!m) return `'${part}' is neither a node count (e.g. 1) nor a percentage (e.g. 10%)`;
    if (m[1] !== undefined) {
      const count = Number(m[1]);
      if (count < 1) return `'${part}': a wave needs at least 1 node`;
      steps.push({ type: 'count', count });
    } else {
      const percent = Number(m[2]);
      if (percent <= 0 || percent > 100) return `'${part}': a percentage must be above 0 and at most 100`;
      steps.push({ type: 'percent', percent });
    }
  }
  return steps;
}

/** Waves as text or as parsed steps; the last wave must reach every target (100%). */
export const Waves = z
  .union([
    z.string().transform((text, ctx) => {
      const parsed = parseWaves(text);
      if (typeof parsed === 'string') {
        ctx.addIssue({ code: 'custom', message: `expected waves such as 1,10%,50%,100% (${parsed})` });
        return z.NEVER;
      }
      return parsed;
    }),
    z.array(WaveStep),
  ])
  .superRefine((steps, ctx) => {
    if (steps.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'expected at least one wave' });
      return;
    }
    const last = steps[steps.length - 1];
    if (!(last?.type === 'percent' && last.percent === 100)) {
      ctx.addIssue({
        code: 'custom',
        message: 'expected the last wave to be 100% so every target is reached',
      });
    }
    let lastPercent = 0;
    let lastCount = 0;
    for (const step of steps) {
      if (step.type === 'percent') {
        if (step.percent <= lastPercent) {
          ctx.addIssue({
            code: 'custom',
            message: `expected percentages to grow wave by wave (${step.percent}% after ${lastPercent}%)`,
          });
        }
        lastPercent = step.percent;
      } else {
        if (step.count <= lastCount) {
          ctx.addIssue({
            code: 'custom',
            message: `expected node counts to grow wave by wave (${step.count} after ${lastCount})`,
          });
        }
        lastCount = step.count;
      }
    }
  });

/** Formats wave steps back to `1,10%,100%`. */
export function formatWaves(steps: readonly WaveStep[]): string {
  return steps.map((s) => (s.type === 'count' ? String(s.count) : `${s.percent}%`)).join(',');
}
