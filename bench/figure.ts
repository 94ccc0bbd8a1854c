// One benchmark figure: what was measured, what it is compared with (measured in the same run),
// the ratio between the two and the goal it is held to. The results file is read back by the
// README renderer, the test and any later tooling, so its shape is a zod schema like every other
// message that leaves a process.
import { z } from 'zod';

/** A number with its unit, e.g. `{ amount: 812.4, unit: 'MiB/s' }`. */
export const Quantity = z.object({ amount: z.number(), unit: z.string().min(1) });
export type Quantity = z.infer<typeof Quantity>;

/** How the ratio is judged. */
export const GoalKind = {
  /** ratio ≥ target (throughput against a peer). */
  ratioAtLeast: 'ratio-at-least',
  /** ratio ≤ target (latency against a bound, origin bytes against the image size). */
  ratioAtMost: 'ratio-at-most',
  /** ratio − 1 ≤ target (wall time against the ideal schedule). */
  overheadAtMost: 'overhead-at-most',
  /** No pass/fail: the figure is reported (a target, when given, is shown as guidance). */
  report: 'report',
} as const;
export type GoalKind = (typeof GoalKind)[keyof typeof GoalKind];

export const Goal = z.object({
  kind: z.enum([GoalKind.ratioAtLeast, GoalKind.ratioAtMost, GoalKind.overheadAtMost, GoalKind.report]),
  target: z.number().optional(),
  /** The goal as the issue states it, e.g. `≥ 0.9`, `overhead ≤ 5 %`. */
  text: z.string().min(1),
});
export type Goal = z.infer<typeof Goal>;

export const FigureStatus = {
  measured: 'measured',
  /** A part or tool it needs is missing; `reason` says which and what to do. */
  unavailable: 'unavailable',
  /** The measurement itself broke; `reason` carries the error. */
  failed: 'failed',
} as const;
export type FigureStatus = (typeof FigureStatus)[keyof typeof FigureStatus];

export const Verdict = { met: 'met', missed: 'missed', reported: 'reported', none: 'n/a' } as const;
export type Verdict = (typeof Verdict)[keyof typeof Verdict];

export const Figure = z.object({
  /** Stable key, e.g. `sha256-pipeline`; the README and later runs compare by it. */
  id: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/),
  title: z.string().min(1),
  status: z.enum([FigureStatus.measured, FigureStatus.unavailable, FigureStatus.failed]),
  value: Quantity.optional(),
  comparedWith: z.object({ label: z.string().min(1), value: Quantity.optional() }),
  /** value / comparedWith.value, in the same unit (absent unless both were measured). */
  ratio: z.number().optional(),
  goal: Goal,
  verdict: z.enum([Verdict.met, Verdict.missed, Verdict.reported, Verdict.none]),
  /** Why a figure is unavailable or failed, or a short note on how to read it. */
  reason: z.string().optional(),
  /** Parameters and raw samples, for whoever wants to dig. */
  details: z.record(z.string(), z.unknown()).optional(),
});
export type Figure = z.infer<typeof Figure>;

/** Judges a ratio against its goal. */
export function verdictOf(goal: Goal, ratio: number | undefined): Verdict {
  if (goal.kind === GoalKind.report) return Verdict.reported;
  if (ratio === undefined || goal.target === undefined || !Number.isFinite(ratio)) return Verdict.none;
  switch (goal.kind) {
    case GoalKind.ratioAtLeast:
      return ratio >= goal.target ? Verdict.met : Verdict.missed;
    case GoalKind.ratioAtMost:
      return ratio <= goal.target ? Verdict.met : Verdict.missed;
    case GoalKind.overheadAtMost:
      return ratio - 1 <= goal.target ? Verdict.met : Verdict.missed;
  }
}

/** What a figure is before it is judged. */
export interface FigureSpec {
  id: string;
  title: string;
  goal: Goal;
  comparedWith: string;
}

/** A measured figure; the ratio and verdict follow from value and baseline. */
export function measured(
  spec: FigureSpec,
  value: Quantity,
  baseline: Quantity | undefined,
  extra: { reason?: string; details?: Record<string, unknown>; ratio?: number } = {},
): Figure {
  const ratio =
    extra.ratio ??
    (baseline && baseline.amount !== 0 && baseline.unit === value.unit
      ? value.amount / baseline.amount
      : undefined);
  return Figure.parse({
    id: spec.id,
    title: spec.title,
    status: FigureStatus.measured,
    value,
    comparedWith: { label: spec.comparedWith, ...(baseline ? { value: baseline } : {}) },
    ...(ratio !== undefined ? { ratio: round(ratio, 4) } : {}),
    goal: spec.goal,
    verdict: baseline || spec.goal.kind === GoalKind.report ? verdictOf(spec.goal, ratio) : Verdict.none,
    ...(extra.reason ? { reason: extra.reason } : {}),
    ...(extra.details ? { details: extra.details } : {}),
  });
}

/** A figure that could not be measured in this run, and why. */
export function notMeasured(
  spec: FigureSpec,
  status: typeof FigureStatus.unavailable | typeof FigureStatus.failed,
  reason: string,
  details?: Record<string, unknown>,
): Figure {
  return Figure.parse({
    id: spec.id,
    title: spec.title,
    status,
    comparedWith: { label: spec.comparedWith },
    goal: spec.goal,
    verdict: Verdict.none,
    reason,
    ...(details ? { details } : {}),
  });
}

/** Rounds to `digits` decimals (figures are read by people; raw samples stay in details). */
export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
