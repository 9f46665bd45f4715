/** Order statistics over samples: benchmarks report medians of runs and percentiles of latencies. */

export function median(xs: readonly number[]): number {
  return percentile(xs, 50)
}

/** Nearest-rank percentile (p in 0..100) of unsorted samples; NaN when there are none. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN
  const sorted = Float64Array.from(xs).sort()
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? NaN
}
