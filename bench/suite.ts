// The shape every benchmark shares, so the runner can compose them: a name, the figures it
// promises, and run(context) → figures. A bench that throws still yields its promised figures,
// marked failed with the error, so one broken measurement never hides the others.
import type { Figure, FigureSpec } from './figure.ts';
import type { ToolOutcome } from './natscli.ts';

/** How big a run is: `tiny` checks the plumbing (tests), `quick` takes minutes, `full` is the record. */
export const Size = { tiny: 'tiny', quick: 'quick', full: 'full' } as const;
export type Size = (typeof Size)[keyof typeof Size];

/** What a bench gets from the runner. */
export interface BenchContext {
  readonly size: Size;
  /** Repository root (benches spawn `cli/main.ts` and the other parts' bench scripts from it). */
  readonly root: string;
  /** Scratch directory for this run, removed by the runner. */
  readonly workDir: string;
  /** The natscli binary, provisioned at most once per run (tiny runs never build it). */
  natscli(): Promise<ToolOutcome>;
  /** A progress line on stderr (stdout is the table). */
  say(line: string): void;
}

/** One benchmark: composable by the runner, runnable alone through it (`--only NAME`). */
export interface BenchModule {
  readonly name: string;
  /** One line: what it measures against what. */
  readonly summary: string;
  /** Every figure it reports at this size, in table order. */
  figures(size: Size): readonly FigureSpec[];
  run(context: BenchContext): Promise<Figure[]>;
}

/** Picks the value for the run's size. */
export function bySize<T>(size: Size, values: Record<Size, T>): T {
  return values[size];
}
