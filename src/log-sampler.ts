/**
 * A log line for events that may come in a flood (rate-limit refusals, publishes refused
 * while the topic bus is down): at most one line every `everyMs`, which says how many events
 * went unlogged since the line before. The first event after a quiet spell is always logged.
 */
export class LogSampler {
  private readonly everyMs: number
  private readonly now: () => number
  private lastLineMs = -Infinity
  private unlogged = 0

  constructor (options: { everyMs: number, now?: () => number }) {
    this.everyMs = options.everyMs
    this.now = options.now ?? Date.now
  }

  /**
   * One event: undefined when it goes unlogged, else the count of events that went unlogged
   * since the last line (log it with the line).
   */
  take (): number | undefined {
    const now = this.now()
    if (now - this.lastLineMs < this.everyMs) {
      this.unlogged += 1
      return undefined
    }
    const unlogged = this.unlogged
    this.lastLineMs = now
    this.unlogged = 0
    return unlogged
  }
}
