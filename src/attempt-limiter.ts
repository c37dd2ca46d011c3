import type { Queryable } from './db/database.js'
import { limitedAddress } from './client-address.js'

/** One limit an attempt counts against: at most `max` attempts under `key` per `windowMs`. */
export interface AttemptLimit {
  key: string
  max: number
  windowMs: number
}

const minuteMs = 60_000
const hourMs = 60 * minuteMs
/**
 * One client address may try this many names at the per-name rate, and one name may be tried
 * from this many addresses: LOGIN_ATTEMPTS × 10 a minute either way.
 */
const loginSpread = 10

/**
 * The limits a login attempt counts against: LOGIN_ATTEMPTS a minute per client address
 * and name (the name without regard to case), 10 × that per address over all names, and
 * 10 × that per name over all addresses, so that a name cannot be guessed at from many
 * addresses at once. An IPv6 address counts by its /64 (src/client-address.ts).
 */
export function loginLimits ({ ip, name, attemptsPerMinute }: { ip: string, name: string, attemptsPerMinute: number }): AttemptLimit[] {
  const address = limitedAddress(ip)
  const lowerName = name.toLowerCase()
  return [
    { key: `login\n${address}\n${lowerName}`, max: attemptsPerMinute, windowMs: minuteMs },
    { key: `login\n${address}`, max: attemptsPerMinute * loginSpread, windowMs: minuteMs },
    // A prefix of its own: a name may look like an IPv4 address.
    { key: `login-name\n${lowerName}`, max: attemptsPerMinute * loginSpread, windowMs: minuteMs }
  ]
}

/** The limit a registration counts against: REGISTER_ATTEMPTS an hour per client address (an IPv6 one by its /64). */
export function registrationLimits ({ ip, attemptsPerHour }: { ip: string, attemptsPerHour: number }): AttemptLimit[] {
  return [{ key: `register\n${limitedAddress(ip)}`, max: attemptsPerHour, windowMs: hourMs }]
}

/**
 * Counts one attempt under every key in one atomic statement: a key whose window has ended
 * starts a new one, any other adds one. Keys are taken in sorted order, so that two
 * attempts sharing keys lock their rows in the same order and never deadlock.
 */
const countSql = `
INSERT INTO attempt_counters AS c (key, attempts, window_ends_at)
SELECT key, 1, now() + window_ms * interval '1 millisecond'
FROM unnest($1::text[], $2::int[]) AS attempt (key, window_ms)
ORDER BY key
ON CONFLICT (key) DO UPDATE SET
  attempts = CASE WHEN c.window_ends_at > now() THEN c.attempts + 1 ELSE 1 END,
  window_ends_at = CASE WHEN c.window_ends_at > now() THEN c.window_ends_at ELSE excluded.window_ends_at END
RETURNING c.key, c.attempts, ceil(extract(epoch FROM c.window_ends_at - now()) * 1000)::int AS window_left_ms`

/**
 * Login and registration attempts per client address (and name) across all instances:
 * fixed-window counters in Postgres, the clock being the database's, so that N instances
 * give no more attempts than one.
 */
export class AttemptLimiter {
  constructor (private readonly db: Queryable) {}

  /**
   * Counts one attempt against each limit (their keys distinct). Resolves to the wait in
   * milliseconds before the attempt would be allowed when it is over any limit, else
   * undefined. An attempt over a limit still counts: hammering does not shorten the wait.
   */
  async count (limits: AttemptLimit[]): Promise<number | undefined> {
    const rows = await this.db.query<{ key: string, attempts: number, window_left_ms: number }>(
      countSql,
      [limits.map((limit) => limit.key), limits.map((limit) => limit.windowMs)],
      'canopy_count_attempts'
    )
    let retryAfterMs: number | undefined
    for (const row of rows) {
      const limit = limits.find((candidate) => candidate.key === row.key)
      if (limit !== undefined && row.attempts > limit.max) retryAfterMs = Math.max(retryAfterMs ?? 0, row.window_left_ms)
    }
    return retryAfterMs
  }

  /** Deletes the counters whose window has ended (they count nothing); returns how many. */
  async sweep (): Promise<number> {
    const [row] = await this.db.query<{ count: number }>(
      'WITH swept AS (DELETE FROM attempt_counters WHERE window_ends_at <= now() RETURNING 1) SELECT count(*)::int AS count FROM swept')
    return row?.count ?? 0
  }
}
