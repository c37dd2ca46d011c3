import type { SessionStore } from '@fastify/session'
import type { Session } from 'fastify'
import { and, eq, getTableName, gt, inArray, lte, sql } from 'drizzle-orm'
import type { Database } from './db/database.js'
import { sessions } from './db/schema.js'
import { HttpError } from './errors.js'

/** The HTTP session's cookie: set at login, cleared at logout. */
export const sessionCookieName = 'canopy.sid'

type Callback = (error?: unknown) => void
type CallbackSession = (error: unknown, session?: Session | null) => void

/** A session that cannot be read or written means the database is away: 503, not 500. */
const unavailable = (error: unknown): HttpError =>
  Object.assign(new HttpError(503, 'unavailable', 'The session store is unreachable; try again'), { cause: error })

/**
 * The read every request and every WebSocket connect makes: a named statement, prepared once
 * per connection, without building the query anew each time.
 */
const readSessionSql = `SELECT ${sessions.data.name} AS data FROM ${getTableName(sessions)}
  WHERE ${sessions.sid.name} = $1 AND ${sessions.expiresAt.name} > now()`

/**
 * @fastify/session's store, kept in Postgres: a login is valid on every instance on the
 * same database and survives restarts. Expired rows are never returned and are deleted by
 * deleteExpired().
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

  /** Of these session ids, the ones still valid (stored, not expired). */
  async stillValid (sids: readonly string[]): Promise<Set<string>> {
    if (sids.length === 0) return new Set()
    const rows = await this.db.orm.select({ sid: sessions.sid }).from(sessions)
      .where(and(inArray(sessions.sid, [...sids]), gt(sessions.expiresAt, sql`now()`)))
    return new Set(rows.map((row) => row.sid))
  }

  /** Removes expired sessions; returns how many. */
  async deleteExpired (): Promise<number> {
    const deleted = await this.db.orm.delete(sessions).where(lte(sessions.expiresAt, sql`now()`)).returning({ sid: sessions.sid })
    return deleted.length
  }
}
