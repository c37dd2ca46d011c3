/** Order statistics and number formatting for the bench. */

/** The p-quantile (0..1) of sorted values, nearest rank. */
export function percentile (sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))
  return sorted[rank] as number
}

export interface Summary {
  median: number
  min: number
  max: number
  runs: number
}

export function summarize (values: readonly number[]): Summary | undefined {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 === 1 ? sorted[middle] as number : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number, runs: sorted.length }
}

/** A figure for the table: three significant digits, k/M for large values. */
export function formatNumber (value: number): string {
  if (!Number.isFinite(value)) return String(value)
  const magnitude = Math.abs(value)
  if (magnitude >= 1e6) return `${(value / 1e6).toPrecision(3)}M`
  if (magnitude >= 1e4) return `${(value / 1e3).toPrecision(3)}k`
  if (magnitude >= 100 || Number.isInteger(value)) return value.toFixed(0)
  if (magnitude >= 10) return value.toFixed(1)
  return value.toFixed(2)
}

export function formatSummary (summary: Summary): string {
  if (summary.runs === 1 || summary.min === summary.max) return formatNumber(summary.median)
  return `${formatNumber(summary.median)} (${formatNumber(summary.min)}–${formatNumber(summary.max)})`
}
