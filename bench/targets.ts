import type { ScenarioReport, TargetCheck } from './report.js'
import type { Column } from './scenarios.js'

/** The targets of issues 10 and 17, checked against the medians of a run (and, where a target says so, every repetition). */

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

  // Issue 17.
  /** Canopy's figure over the peer's, repetition by repetition; undefined unless both ran every one. */
  const perRepetition = (id: string, key: string): number[] | undefined => {
    const canopy = find(id)?.systems.canopy?.runs ?? []
    const peer = find(id)?.systems.peer?.runs ?? []
    if (canopy.length === 0 || canopy.length !== peer.length) return undefined
    const ratios = canopy.map((run) => {
      const mine = run.figures[key]
      const theirs = peer.find((other) => other.repetition === run.repetition)?.figures[key]
      return mine === undefined || theirs === undefined || theirs === 0 ? undefined : mine / theirs
    })
    return ratios.some((r) => r === undefined) ? undefined : ratios as number[]
  }
  const lowest = (values: number[] | undefined): number | undefined => values === undefined ? undefined : Math.min(...values)
  const everyRepetition = (values: number[] | undefined) => (v: number): string => `${times(v)} at the lowest (${(values ?? []).map(times).join(', ')})`
  atMost('latency p99 ≤ 4.0 ms, one instance (2× the limit)', median('latency-1i', 'canopy', 'p99Ms'), 4, ms)
  check('latency p99 ≤ the adapter peer, two instances', median('latency-2i', 'canopy', 'p99Ms'),
    (v) => v <= (median('latency-2i', 'peer', 'p99Ms') ?? 0), (v) => `${ms(v)} (peer ${ms(median('latency-2i', 'peer', 'p99Ms') ?? Number.NaN)})`)
  for (const id of ['fanout-100', 'fanout-1000']) {
    const ratios = perRepetition(id, 'deliveredPerSecond')
    atLeast(`${id}: delivered/s ≥ 1.05× Socket.IO in every repetition`, lowest(ratios), 1.05, everyRepetition(ratios))
  }
  atLeast('publish-heavy: acked ≥ 19,200 msg/s', median('publish-heavy-2i', 'canopy', 'publishedPerSecond'), 19_200, (v) => `${Math.round(v)} msg/s`)
  const heavy = find('publish-heavy-2i')
  const acked = median('publish-heavy-2i', 'canopy', 'publishedPerSecond')
  const delivered = median('publish-heavy-2i', 'canopy', 'deliveredPerSecond')
  const owed = heavy === undefined || acked === undefined || delivered === undefined || acked === 0
    ? undefined
    : delivered / (acked * heavy.params.subscribers / heavy.params.topics)
  atLeast('publish-heavy: every acked message delivered within the window (≥ 99 %)', owed, 0.99, (v) => `${(100 * v).toFixed(1)} %`)
  atMost('connect-and-history: server CPU per connect ≤ 0.9 ms', median('connect-history', 'canopy', 'cpuMsPerConnect'), 0.9, ms)
  return checks
}

export function formatTargets (checks: readonly TargetCheck[]): string {
  return ['Targets (issues 10 and 17), from the medians of this run:',
    ...checks.map((check) => `  ${check.met === undefined ? 'n/a    ' : check.met ? 'met    ' : 'NOT MET'}  ${check.target}: ${check.value}`)].join('\n')
}
