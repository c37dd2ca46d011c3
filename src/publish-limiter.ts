import type { Queryable } from './db/client.js'

/** A leased share of a user's tokens is good for this long; what is left then is dropped. */
const leaseTtlMs = 1000
/** A lease takes at most this many seconds' worth of the rate. */
const leaseSeconds = 0.5

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
RETURNING granted`

export type TakeResult = 'ok' | 'limited' | 'unavailable'

/**
 * PUBLISH_RATE / PUBLISH_BURST per user across all instances: a token bucket per user in
 * Postgres, from which each instance leases a few tokens at a time, so that most publishes
 * cost no extra query. Tokens leased and not used within a second are dropped: the limit
 * errs on the strict side, never the lenient one.
 */
export class PublishLimiter {
  private readonly credits = new Map<number, { tokens: number, expiresMs: number }>()
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
    const now = this.now()
    const credit = this.credits.get(userId)
    if (credit !== undefined && credit.tokens >= 1 && credit.expiresMs > now) {
      credit.tokens -= 1
      return 'ok'
    }
    let granted: number
    try {
      const [row] = await this.db.query<{ granted: number }>(leaseSql, [userId, this.burst, this.ratePerSecond, this.leaseSize])
      granted = row?.granted ?? 0
    } catch {
      return 'unavailable'
    }
    if (granted < 1) return 'limited'
    this.credits.set(userId, { tokens: granted - 1, expiresMs: now + leaseTtlMs })
    return 'ok'
  }

  private sweep (): void {
    const now = this.now()
    for (const [userId, credit] of this.credits) if (credit.expiresMs <= now) this.credits.delete(userId)
  }

  stop (): void {
    clearInterval(this.sweepTimer)
  }
}
