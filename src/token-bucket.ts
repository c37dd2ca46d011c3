/**
 * Token buckets by key (a user id, a connection): `burst` tokens at most, refilled at
 * `ratePerSecond`. Memory is bounded by the keys active within the last refill period:
 * a full bucket carries no information and is forgotten.
 */
export class TokenBuckets<Key> {
  private readonly buckets = new Map<Key, { tokens: number, updatedMs: number, promisedUntilMs: number }>()
  private readonly sweepTimer: NodeJS.Timeout

  constructor (
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now
  ) {
    const refillMs = (burst / ratePerSecond) * 1000
    this.sweepTimer = setInterval(() => { this.sweep() }, Math.max(1000, Math.min(refillMs, 60_000))).unref()
  }

  /**
   * Takes one token for `key`: 0 when taken, else (nothing taken) the milliseconds until a
   * token is back.
   */
  take (key: Key): number {
    const now = this.now()
    const bucket = this.buckets.get(key)
    if (bucket === undefined) {
      this.buckets.set(key, { tokens: this.burst - 1, updatedMs: now, promisedUntilMs: 0 })
      return 0
    }
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.updatedMs) / 1000) * this.ratePerSecond)
    bucket.updatedMs = now
    if (bucket.tokens < 1) {
      // Each caller refused is told a later token than the one before, so that callers who
      // wait as told do not all come back for the same token.
      const nextTokenMs = now + ((1 - bucket.tokens) / this.ratePerSecond) * 1000
      bucket.promisedUntilMs = Math.max(nextTokenMs, bucket.promisedUntilMs + 1000 / this.ratePerSecond)
      return Math.max(1, Math.ceil(bucket.promisedUntilMs - now))
    }
    bucket.tokens -= 1
    return 0
  }

  delete (key: Key): void {
    this.buckets.delete(key)
  }

  private sweep (): void {
    const now = this.now()
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.updatedMs) / 1000) * this.ratePerSecond >= this.burst) this.buckets.delete(key)
    }
  }

  stop (): void {
    clearInterval(this.sweepTimer)
  }
}
