import type { Scenario, SystemName } from './scenarios.js'

/**
 * What the orchestrator and the load generator say to each other. The plan goes in as the
 * generator's one argument (JSON); the generator writes one JSON line per event to stdout
 * and, after each mark, waits for one line on stdin: the orchestrator has taken its
 * samples (CPU from /proc, or memory from the servers) at that moment. Each mark carries
 * the generator's own CPU time.
 */

export interface LoadPlan {
  scenario: Scenario
  system: SystemName
  /** The system's instances, in start order. */
  instances: Array<{ host: string, port: number }>
}

export type Mark = 'window-start' | 'window-end' | 'memory-baseline' | 'memory-loaded'

export interface LoadResult {
  ok: boolean
  /** Why the scenario failed, when it did. */
  reason?: string
  /** Figures measured at the sockets (msgs/s, ms); CPU and memory figures are the orchestrator's. */
  figures: Record<string, number>
  /** Counts behind the figures (messages, samples, connections). */
  counts: Record<string, number>
  notes: string[]
}

/**
 * A mark carries the generator's own CPU time (process.cpuUsage, in seconds): /proc counts
 * in clock ticks of 10 ms, too coarse for a short window of a light generator.
 */
export type LoadOutput = { mark: Mark, cpuSeconds: number } | { result: LoadResult }
