import type { Queryable } from './db/database.js'

/** A leased share of a user's tokens is good for this long; what is left then is dropped. */
const leaseTtlMs = 1000
/** A lease takes at most this many seconds' worth of the rate. */
const leaseSeconds = 0.5
/**
 * A publish that leaves a lease this close to its end, in tokens or in time, renews it in the
 * background: a user who keeps publishing never waits for a lease.
 */
const renewAtShare = 0.25

/**
 * Takes `lease` tokens (fewer if fewer are left) from the user's bucket in one atomic
 * statement: refill by elapsed time at `rate`, cap at `burst`, grant, record. A new
 * bucket starts full.
 */
const leaseSql = `
INSERT INTO publish_buckets AS b (user_id, tokens, updated_at, granted)
VALUES ($1::int, $2::float8 - least($4::int, $2::float8), now(), least($4::int, $2::float8)::int)
ON CONFLICT (user_id) DO UPDATE SET
  granted = least($4::int, floor(least($2::float8, b.tokens + extract(epoch FROM now() - b.updated_at)::float8 * $3::float8)))::int,
  tokens = least($2::float8, b.tokens + extract(epoch FROM now() - b.updated_at)::float8 * $3::float8)
         - least($4::int, floor(least($2::float8, b.tokens + extract(epoch FROM now() - b.updated_at)::float8 * $3::float8))),
  updated_at = now()
RETURNING granted, tokens`

/** Taken, refused with the wait until a token is back, or the bucket could not be read. */
export type TakeResult = 'ok' | { retryAfterMs: number } | 'unavailable'

/**
 * PUBLISH_RATE / PUBLISH_BURST per user across all instances: a token bucket per user in
 * Postgres, from which each instance leases a few tokens at a time, so that most publishes
 * cost no extra query. Tokens leased and not used within a second are dropped: the limit
 * errs on the strict side, never the lenient one.
 */
export class PublishLimiter {
  /**
   * Tokens leased by this instance; `empty` records that the bucket itself had none left,
   * and `promised` how many refused publishes were told to come back since: each is given a
   * later token, so that they do not all come back for the same one.
   */
  private readonly credits = new Map<number, { tokens: number, expiresMs: number, empty: boolean, promised: number }>()
  /** One lease at a time per user: publishes arriving meanwhile wait for it, not lease again. */
  private readonly leasing = new Map<number, Promise<void>>()
  private readonly leaseSize: number
  private readonly sweepTimer: NodeJS.Timeout

  constructor (
    private readonly db: Queryable,
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now
  ) {
    this.leaseSize = Math.max(1, Math.min(burst, Math.ceil(ratePerSecond * leaseSeconds)))
    this.sweepTimer = setInterval(() => { this.sweep() }, leaseTtlMs * 10).unref()
  }

  async take (userId: number): Promise<TakeResult> {
    for (;;) {
      if (this.spend(userId)) {
        this.renewSoon(userId)
        return 'ok'
      }
      // The bucket was empty a moment ago: no query until a token can have come back.
      const credit = this.credits.get(userId)
      if (credit?.empty === true && credit.expiresMs > this.now()) {
        credit.promised += 1
        return { retryAfterMs: Math.ceil(credit.expiresMs - this.now() + (credit.promised * 1000) / this.ratePerSecond) }
      }
      const pending = this.leasing.get(userId)
      if (pending === undefined) break
      await pending
    }
    const outcome = await this.lease(userId, this.leaseSize, false)
    if (outcome !== 'ok') return outcome
    if (this.spend(userId)) return 'ok'
    // Leased, and spent by other publishes of this user meanwhile: each one refused so is told
    // a later token than the one before, so that they do not all come back for the same one.
    const credit = this.credits.get(userId)
    const promised = credit === undefined ? 1 : ++credit.promised
    return { retryAfterMs: Math.max(1, Math.ceil((promised * 1000) / this.ratePerSecond)) }
  }

  /**
   * Leases up to `size` tokens from the user's bucket, one lease at a time per user. In the
   * background (renewing a lease still in use), a bucket found empty changes nothing: the
   * tokens left are spent first, and the publish that finds none leases again and is told
   * the wait.
   */
  private async lease (userId: number, size: number, background: boolean): Promise<TakeResult> {
    let outcome: TakeResult = 'ok'
    const lease = (async () => {
      let granted: number
      let left: number
      try {
        const [row] = await this.db.query<{ granted: number, tokens: number }>(leaseSql, [userId, this.burst, this.ratePerSecond, size], 'canopy_lease_tokens')
        granted = row?.granted ?? 0
        left = row?.tokens ?? 0
      } catch {
        outcome = 'unavailable'
        return
      }
      const now = this.now()
      if (granted < 1) {
        if (background) return
        // Not asked again before a token is back: that is also the client's hint.
        const retryAfterMs = Math.max(1, Math.ceil(((1 - left) / this.ratePerSecond) * 1000))
        outcome = { retryAfterMs }
        this.credits.set(userId, { tokens: 0, expiresMs: now + retryAfterMs, empty: true, promised: 0 })
        return
      }
      const credit = this.credits.get(userId)
      const kept = credit !== undefined && credit.expiresMs > now ? credit.tokens : 0
      this.credits.set(userId, { tokens: kept + granted, expiresMs: now + leaseTtlMs, empty: false, promised: 0 })
    })()
    this.leasing.set(userId, lease)
    try {
      await lease
    } finally {
      this.leasing.delete(userId)
    }
    return outcome
  }

  /**
   * After a spend: a lease near its end, in tokens or in time, is topped up to one lease
   * without anyone waiting. An instance never holds more than one lease's worth of a user's
   * tokens, however long the user keeps publishing.
   */
  private renewSoon (userId: number): void {
    const credit = this.credits.get(userId)
    if (credit === undefined || this.leasing.has(userId)) return
    const nearEnd = credit.tokens < this.leaseSize * renewAtShare || credit.expiresMs - this.now() < leaseTtlMs * renewAtShare
    const topUp = this.leaseSize - Math.floor(credit.tokens)
    if (nearEnd && topUp >= 1) void this.lease(userId, topUp, true)
  }

  /** Takes a token from this instance's unexpired lease, if it has one. */
  private spend (userId: number): boolean {
    const credit = this.credits.get(userId)
    if (credit === undefined || credit.tokens < 1 || credit.expiresMs <= this.now()) return false
    credit.tokens -= 1
    return true
  }

  private sweep (): void {
    const now = this.now()
    for (const [userId, credit] of this.credits) if (credit.expiresMs <= now) this.credits.delete(userId)
  }

  stop (): void {
    clearInterval(this.sweepTimer)
  }
}
