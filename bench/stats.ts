// Small statistics for benchmark samples.

/** The p-th percentile (0–100) by nearest rank; undefined for no samples. */
export function percentile(samples: readonly number[], p: number): number | undefined {
  if (samples.length === 0) return undefined;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

/** p50, p90, p99 and max of latency samples in ms, rounded to 0.1 ms. */
export function latencySummary(samples: readonly number[]): {
  count: number;
  p50?: number;
  p90?: number;
  p99?: number;
  max?: number;
} {
  const r = (v: number | undefined) => (v === undefined ? undefined : Math.round(v * 10) / 10);
  return {
    count: samples.length,
    p50: r(percentile(samples, 50)),
    p90: r(percentile(samples, 90)),
    p99: r(percentile(samples, 99)),
    max: r(percentile(samples, 100)),
  };
}

/** The largest of the samples (best throughput of several rounds on a shared machine). */
export function best(samples: readonly number[]): number {
  return samples.reduce((a, b) => Math.max(a, b), Number.NEGATIVE_INFINITY);
}

/** Bytes per second as MiB/s. */
export function mibPerSec(bytesPerSec: number): number {
  return bytesPerSec / 1024 ** 2;
}
