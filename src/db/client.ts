import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PGlite } from '@electric-sql/pglite'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator'
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import pg from 'pg'
import { projectRoot } from '../paths.js'
import * as schema from './schema.js'

export const migrationsFolder = fileURLToPath(new URL('migrations/', projectRoot))
/** Any key will do as long as every Canopy instance uses the same one. */
const migrationLockKey = 0x63616e6f

export type Orm = PgDatabase<PgQueryResultHKT, typeof schema>

export interface Queryable {
  /**
   * Runs one statement. A `name` makes it a prepared statement on a Postgres server (parsed
   * and planned once per connection): for the hot statements. PGlite ignores it.
   */
  query<Row extends object>(text: string, params?: unknown[], name?: string): Promise<Row[]>
}

export interface ListenHandlers {
  onNotify(payload: string): void
  /** The listener is down (connection lost); notifications may have been missed. */
  onDown?(error: Error): void
  /** LISTEN is in place again after onDown: read what was missed from the tables. */
  onUp?(): void
}

export interface Listener {
  readonly up: boolean
  close(): Promise<void>
}

/**
 * The one small interface over the two engines: nothing above it knows whether
 * PGlite or a Postgres server runs.
 */
export interface Database extends Queryable {
  readonly kind: 'pglite' | 'postgres'
  readonly orm: Orm
  /** Runs fn in one transaction; it commits when fn resolves and rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>
  listen(channel: string, handlers: ListenHandlers): Promise<Listener>
  notify(channel: string, payload: string): Promise<void>
  /** Applies pending migrations from migrations/; safe when many instances start together. */
  migrate(): Promise<void>
  close(): Promise<void>
}

export class DatabaseUnreachableError extends Error {
  override name = 'DatabaseUnreachableError'
}

/** int8 as a JS number: message ids and counts stay far below 2^53. */
const parseInt8 = (value: string): number => Number(value)

export async function openDatabase (options: { databaseUrl?: string | undefined, dataDir: string }): Promise<Database> {
  if (options.databaseUrl === undefined) return await openPglite(join(options.dataDir, 'pglite'))
  return await openPostgres(options.databaseUrl)
}

/** Where a URL points, without its password, for error messages and logs. */
export function describeUrl (url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname}:${parsed.port === '' ? '5432' : parsed.port}${parsed.pathname}`
  } catch {
    return 'the DATABASE_URL'
  }
}

async function openPglite (directory: string): Promise<Database> {
  mkdirSync(directory, { recursive: true })
  const client = new PGlite(directory, { parsers: { 20: parseInt8 } })
  await client.waitReady
  const pgliteOrm = drizzlePglite(client, { schema })
  const orm = pgliteOrm as unknown as Orm
  const queryable = (target: Pick<PGlite, 'query'>): Queryable => ({
    async query<Row extends object>(text: string, params?: unknown[]) {
      return (await target.query<Row>(text, params)).rows
    }
  })
  return {
    kind: 'pglite',
    orm,
    ...queryable(client),
    async transaction (fn) {
      return await client.transaction(async (tx) => await fn(queryable(tx)))
    },
    async listen (channel, handlers) {
      // In-process: the engine lives as long as the app, so this listener never drops.
      const unlisten = await client.listen(channel, handlers.onNotify)
      return { up: true, close: unlisten }
    },
    async notify (channel, payload) {
      await client.query('SELECT pg_notify($1, $2)', [channel, payload])
    },
    async migrate () {
      await migratePglite(pgliteOrm, { migrationsFolder })
    },
    async close () {
      if (!client.closed) await client.close()
    }
  }
}

const pgTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20 ? parseInt8 : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser
}

async function openPostgres (url: string): Promise<Database> {
  const pool = new pg.Pool({
    connectionString: url,
    application_name: 'canopy',
    max: 10,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    types: pgTypes
  })
  // An idle client that loses its server emits here; the pool drops it and makes a new one.
  pool.on('error', () => {})
  try {
    const client = await pool.connect()
    client.release()
  } catch (error) {
    await pool.end()
    throw new DatabaseUnreachableError(`Cannot reach the database at ${describeUrl(url)}: ${(error as Error).message}`)
  }
  const orm = drizzlePg(pool, { schema }) as unknown as Orm
  return {
    kind: 'postgres',
    orm,
    async query<Row extends object>(text: string, params?: unknown[], name?: string) {
      return (await pool.query<Row>(name === undefined ? { text, values: params } : { name, text, values: params })).rows
    },
    async transaction (fn) {
      const client = await pool.connect()
      let broken: Error | undefined
      try {
        await client.query('BEGIN')
        const result = await fn({
          async query<Row extends object>(text: string, params?: unknown[], name?: string) {
            return (await client.query<Row>(name === undefined ? { text, values: params } : { name, text, values: params })).rows
          }
        })
        await client.query('COMMIT')
        return result
      } catch (error) {
        try {
          await client.query('ROLLBACK')
        } catch (rollbackError) {
          broken = rollbackError as Error
        }
        throw error
      } finally {
        // A client whose rollback failed has lost its connection: do not reuse it.
        client.release(broken)
      }
    },
    async listen (channel, handlers) {
      return await listenWithReconnect(url, channel, handlers)
    },
    async notify (channel, payload) {
      await pool.query('SELECT pg_notify($1, $2)', [channel, payload])
    },
    async migrate () {
      // Instances starting together on one database take turns; the first one migrates.
      const client = await pool.connect()
      try {
        await client.query('SELECT pg_advisory_lock($1)', [migrationLockKey])
        try {
          await migratePg(drizzlePg(client, { schema }), { migrationsFolder })
        } finally {
          await client.query('SELECT pg_advisory_unlock($1)', [migrationLockKey])
        }
      } finally {
        client.release()
      }
    },
    async close () {
      await pool.end()
    }
  }
}

const listenBackoffMs = { first: 1000, max: 30_000 }
const listenHealthCheckMs = 5000
const listenHealthTimeoutMs = 3000

/**
 * One dedicated connection outside the pool, named `canopy-bus` in pg_stat_activity.
 * It dies silently (half-open TCP, failover, pg_terminate_backend), so it is checked on a
 * timer and reconnected forever with backoff and jitter.
 */
async function listenWithReconnect (url: string, channel: string, handlers: ListenHandlers): Promise<Listener> {
  let client: pg.Client | undefined
  let up = false
  let closed = false
  let attempt = 0
  let retryTimer: NodeJS.Timeout | undefined
  let healthTimer: NodeJS.Timeout | undefined

  const connect = async (): Promise<void> => {
    const next = new pg.Client({ connectionString: url, application_name: 'canopy-bus', keepAlive: true, types: pgTypes })
    next.on('notification', (message) => {
      if (message.channel === channel && message.payload !== undefined) handlers.onNotify(message.payload)
    })
    next.on('error', (error) => { lost(next, error) })
    next.on('end', () => { lost(next, new Error('LISTEN connection ended')) })
    client = next
    await next.connect()
    await next.query(`LISTEN "${channel.replaceAll('"', '""')}"`)
    if (closed) { await next.end(); return }
    const wasDown = attempt > 0
    up = true
    attempt = 0
    healthTimer = setInterval(() => { void check(next) }, listenHealthCheckMs).unref()
    if (wasDown) handlers.onUp?.()
  }

  const check = async (target: pg.Client): Promise<void> => {
    let timeout: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        target.query('SELECT 1'),
        new Promise((_resolve, reject) => { timeout = setTimeout(() => { reject(new Error('LISTEN connection health check timed out')) }, listenHealthTimeoutMs) })
      ])
    } catch (error) {
      lost(target, error as Error)
    } finally {
      clearTimeout(timeout)
    }
  }

  const lost = (target: pg.Client, error: Error): void => {
    if (target !== client || closed) return
    client = undefined
    clearInterval(healthTimer)
    target.removeAllListeners('end')
    target.end().catch(() => {})
    if (up) {
      up = false
      handlers.onDown?.(error)
    }
    scheduleRetry()
  }

  const scheduleRetry = (): void => {
    if (closed || retryTimer !== undefined) return
    attempt += 1
    const ceiling = Math.min(listenBackoffMs.max, listenBackoffMs.first * 2 ** (attempt - 1))
    const delay = ceiling / 2 + Math.random() * ceiling / 2
    retryTimer = setTimeout(() => {
      retryTimer = undefined
      connect().catch((error: Error) => {
        if (client !== undefined) lost(client, error)
        else scheduleRetry()
      })
    }, delay)
    retryTimer.unref()
  }

  await connect()
  return {
    get up () { return up },
    async close () {
      closed = true
      up = false
      clearTimeout(retryTimer)
      clearInterval(healthTimer)
      const last = client
      client = undefined
      if (last !== undefined) await last.end().catch(() => {})
    }
  }
}
