import type { WaveStep } from '../schema/index.ts';

/**
 * Splits the targets into waves. Steps are cumulative: `1,10%,100%` over 50 nodes gives waves of
 * 1, 4 and 45 nodes. A step that reaches no further than the previous one yields no wave, and
 * the last wave always takes whatever is left.
 */
export function planWaves(targets: readonly string[], steps: readonly WaveStep[]): string[][] {
  const waves: string[][] = [];
  let reached = 0;
  steps.forEach((step, i) => {
    const goal =
      i === steps.length - 1
        ? targets.length
        : step.type === 'count'
          ? Math.min(step.count, targets.length)
          : Math.min(Math.ceil((targets.length * step.percent) / 100), targets.length);
    if (goal > reached) {
      waves.push(targets.slice(reached, goal));
      reached = goal;
    }
  });
  return waves;
}

/** The maintenance window `now` falls in, or else the next one to open (ms since epoch). */
export function windowAround(
  nowMs: number,
  window: { start: string; duration: number },
): { opensAt: number; closesAt: number } {
  const day = 86_400_000;
  const [h, m] = window.start.split(':').map(Number) as [number, number];
  const startOfDay = nowMs - (nowMs % day);
  for (const dayOffset of [-1, 0, 1]) {
    const open = startOfDay + dayOffset * day + (h * 60 + m) * 60_000;
    if ((nowMs >= open && nowMs < open + window.duration) || open > nowMs) {
      return { opensAt: open, closesAt: open + window.duration };
    }
  }
  return { opensAt: nowMs, closesAt: nowMs + window.duration };
}

/** When the next maintenance window opens, in ms from `now` (0 when inside one). */
export function msUntilWindow(
  nowMs: number,
  window: { start: string; duration: number } | undefined,
): number {
  return window ? Math.max(0, windowAround(nowMs, window).opensAt - nowMs) : 0;
}
