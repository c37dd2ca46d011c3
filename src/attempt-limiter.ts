import type { Queryable } from './db/database.js'

/** One limit an attempt counts against: at most `max` attempts under `key` per `windowMs`. */
export interface AttemptLimit {
  key: string
  max: number
  windowMs: number
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
