import type { ScenarioReport } from './report.js'
import type { Column } from './scenarios.js'

/** The targets of issue 10, checked against the medians of a run. */

export interface TargetCheck {
  target: string
  value: string
  /** Undefined when the run did not measure the figure (a partial run, a failed system). */
  met: boolean | undefined
}

export function targets (reports: readonly ScenarioReport[]): TargetCheck[] {
  const find = (id: string): ScenarioReport | undefined => reports.find((r) => r.id === id)
  const median = (id: string, column: Column, key: string): number | undefined => find(id)?.systems[column]?.summaries[key]?.median
  const ratio = (id: string, key: string, to: 'canopyToLimit' | 'canopyToPeer'): number | undefined => find(id)?.ratios[key]?.[to]
  const checks: TargetCheck[] = []
  const check = (target: string, value: number | undefined, met: (v: number) => boolean, show: (v: number) => string): void => {
    checks.push({ target, value: value === undefined ? 'n/a' : show(value), met: value === undefined ? undefined : met(value) })
  }
  const atLeast = (target: string, value: number | undefined, bound: number, show: (v: number) => string): void => { check(target, value, (v) => v >= bound, show) }
  const atMost = (target: string, value: number | undefined, bound: number, show: (v: number) => string): void => { check(target, value, (v) => v <= bound, show) }
  const times = (v: number): string => `${v.toFixed(2)}×`
  const ms = (v: number): string => `${v.toFixed(2)} ms`
  const kib = (v: number): string => `${v.toFixed(1)} KiB`
  atLeast('fan-out 1000: delivered/s ≥ 90 % of the limit', ratio('fanout-1000', 'deliveredPerSecond', 'canopyToLimit'), 0.9, times)
  atLeast('fan-out 1000: delivered/s ≥ Socket.IO', ratio('fanout-1000', 'deliveredPerSecond', 'canopyToPeer'), 1, times)
  atLeast('fan-out 100: delivered/s ≥ 70 % of the limit', ratio('fanout-100', 'deliveredPerSecond', 'canopyToLimit'), 0.7, times)
  atLeast('fan-out 100: delivered/s ≥ Socket.IO', ratio('fanout-100', 'deliveredPerSecond', 'canopyToPeer'), 1, times)
  atLeast('two instances: deliveries per server CPU-s ≥ 1.2× the adapter peer', ratio('fanout-100-2i', 'deliveriesPerCpuSecond', 'canopyToPeer'), 1.2, times)
  // The peer acks before its NOTIFY is even sent: its delivered/s tells what it really carried.
  const deliveredRatio = ratio('publish-heavy-2i', 'deliveredPerSecond', 'canopyToPeer')
  atLeast('publish-heavy: acked msgs/s ≥ 3× the adapter peer', ratio('publish-heavy-2i', 'publishedPerSecond', 'canopyToPeer'), 3,
    (v) => `${times(v)} (delivered/s: ${deliveredRatio === undefined ? 'n/a' : times(deliveredRatio)})`)
  atMost('latency p99 ≤ 5 ms, one instance', median('latency-1i', 'canopy', 'p99Ms'), 5, ms)
  atMost('latency p99 ≤ 6 ms, two instances', median('latency-2i', 'canopy', 'p99Ms'), 6, ms)
  atMost('≤ 4 KiB heap per idle connection', median('idle-memory', 'canopy', 'heapPerConnectionKiB'), 4, kib)
  atMost('≤ 12 KiB RSS per idle connection', median('idle-memory', 'canopy', 'rssPerConnectionKiB'), 12, kib)
  atMost('connect-and-history p99 ≤ 10 ms', median('connect-history', 'canopy', 'p99Ms'), 10, ms)
  return checks
}

export function formatTargets (checks: readonly TargetCheck[]): string {
  return ['Targets (issue 10), from the medians of this run:',
    ...checks.map((check) => `  ${check.met === undefined ? 'n/a    ' : check.met ? 'met    ' : 'NOT MET'}  ${check.target}: ${check.value}`)].join('\n')
}
