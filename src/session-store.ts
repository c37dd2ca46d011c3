import type { SessionStore } from '@fastify/session'
import type { Session } from 'fastify'
import { eq, getTableName, lte, sql } from 'drizzle-orm'
import type { Database } from './db/database.js'
import { sessions, users } from './db/schema.js'
import { HttpError } from './errors.js'

/**
 * The HTTP session's cookie: set at login, cleared at logout. In production it carries the
 * `__Host-` prefix, so a browser takes it only Secure, for Path=/ and from this very host:
 * a sibling subdomain cannot plant or overwrite it.
 */
export function sessionCookieName ({ production }: { production: boolean }): string {
  return production ? '__Host-canopy.sid' : 'canopy.sid'
}

/** At most this many sessions per user: a login past that ends the oldest. */
export const maxSessionsPerUser = 20

type Callback = (error?: unknown) => void
type CallbackSession = (error: unknown, session?: Session | null) => void

/** A session that cannot be read or written means the database is away: 503, not 500. */
const unavailable = (error: unknown): HttpError =>
  Object.assign(new HttpError(503, 'unavailable', 'The session store is unreachable; try again'), { cause: error })

/**
 * A session of a disabled user is no session. Disabling a user deletes their sessions, but a
 * login that checked the user a moment before may store one after: this refuses it, at the
 * cost of one lookup by primary key.
 */
const ofNoDisabledUser = `NOT EXISTS (SELECT 1 FROM ${getTableName(users)} u
  WHERE u.${users.id.name} = ${getTableName(sessions)}.${sessions.userId.name} AND u.${users.disabledAt.name} IS NOT NULL)`

/**
 * The read every request and every WebSocket connect makes: a named statement, prepared once
 * per connection, without building the query anew each time.
 */
const readSessionSql = `SELECT ${sessions.data.name} AS data FROM ${getTableName(sessions)}
  WHERE ${sessions.sid.name} = $1 AND ${sessions.expiresAt.name} > now() AND ${ofNoDisabledUser}`

/** Session ids per statement of the session check (one array parameter each). */
const stillValidSliceSize = 10_000

/**
 * The ids are one array parameter: a statement takes at most 65,535 parameters, and an
 * instance may hold the sockets of more sessions than that.
 */
const stillValidSql = `SELECT ${sessions.sid.name} AS sid FROM ${getTableName(sessions)}
  WHERE ${sessions.sid.name} = ANY($1::text[]) AND ${sessions.expiresAt.name} > now() AND ${ofNoDisabledUser}`

/**
 * A user's sessions but the `keep` newest. Every session lives sessionMaxAgeMs from its
 * login (plugins/session.ts), so the latest expiry is the latest login; expired ones go first.
 */
const endOldestSql = `DELETE FROM ${getTableName(sessions)} WHERE ${sessions.sid.name} IN (
  SELECT ${sessions.sid.name} FROM ${getTableName(sessions)} WHERE ${sessions.userId.name} = $1
  ORDER BY ${sessions.expiresAt.name} DESC, ${sessions.sid.name} DESC OFFSET $2
) RETURNING ${sessions.sid.name} AS sid`

/**
 * @fastify/session's store, kept in Postgres: a login is valid on every instance on the
 * same database and survives restarts. Expired rows, and the sessions of a disabled user,
 * are never returned; expired rows are deleted by deleteExpired().
 */
export class PostgresSessionStore implements SessionStore {
  constructor (private readonly db: Database, private readonly defaultMaxAgeMs: number) {}

  set (sid: string, session: Session, callback: Callback): void {
    const expiresAt = session.cookie.expires ?? new Date(Date.now() + this.defaultMaxAgeMs)
    const row = { sid, userId: session.userId ?? null, data: session, expiresAt }
    this.db.orm.insert(sessions).values(row)
      .onConflictDoUpdate({ target: sessions.sid, set: { userId: row.userId, data: row.data, expiresAt: row.expiresAt } })
      .then(() => { callback() }, (error: unknown) => { callback(unavailable(error)) })
  }

  get (sid: string, callback: CallbackSession): void {
    this.db.query<{ data: Session }>(readSessionSql, [sid], 'canopy_read_session')
      .then(([row]) => { callback(null, row?.data ?? null) }, (error: unknown) => { callback(unavailable(error)) })
  }

  destroy (sid: string, callback: Callback): void {
    this.db.orm.delete(sessions).where(eq(sessions.sid, sid)).then(() => { callback() }, (error: unknown) => { callback(unavailable(error)) })
  }

  /**
   * Of these session ids, the ones still valid (stored, not expired, not a disabled user's). Asked in slices, so
   * that no one statement of an instance with very many sockets nears the statement bound.
   */
  async stillValid (sids: readonly string[]): Promise<Set<string>> {
    const valid = new Set<string>()
    for (let from = 0; from < sids.length; from += stillValidSliceSize) {
      const rows = await this.db.query<{ sid: string }>(stillValidSql, [sids.slice(from, from + stillValidSliceSize)])
      for (const row of rows) valid.add(row.sid)
    }
    return valid
  }

  /** Ends every session of a user but the `keep` most recent; returns the ids of those ended. */
  async endOldest ({ userId, keep }: { userId: number, keep: number }): Promise<string[]> {
    const rows = await this.db.query<{ sid: string }>(endOldestSql, [userId, keep])
    return rows.map((row) => row.sid)
  }

  /** Ends every session of a user (a logout everywhere); returns their ids. */
  async endAllOf (userId: number): Promise<string[]> {
    const ended = await this.db.orm.delete(sessions).where(eq(sessions.userId, userId)).returning({ sid: sessions.sid })
    return ended.map((row) => row.sid)
  }

  /** Removes expired sessions; returns how many. */
  async deleteExpired (): Promise<number> {
    const deleted = await this.db.orm.delete(sessions).where(lte(sessions.expiresAt, sql`now()`)).returning({ sid: sessions.sid })
    return deleted.length
  }
}
