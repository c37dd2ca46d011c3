import { drizzle } from 'drizzle-orm/node-postgres'
import { migrate } from 'drizzle-orm/node-postgres/migrator'
import pg from 'pg'
import { DatabaseUnreachableError, describeUrl, migrationsFolder, parseInt8, type Database, type Orm } from './database.js'
import { listenWithReconnect } from './listener.js'
import { pendingMigrations } from './migrations.js'
import * as schema from './schema.js'

/** The advisory lock instances take turns on to migrate: any key will do, as long as every Canopy instance uses the same one. */
export const migrationLockKey = 0x63616e6f
/**
 * No statement runs longer than this on the server, lock waits included: a stalled
 * database answers with an error and stores nothing, rather than hanging every client.
 */
export const statementTimeoutMs = 3000
/** The client's own limit, beyond the server's, for a server that does not answer at all (hung, or the network gone). */
const queryTimeoutBeyondStatementMs = 1000

const pgTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20 ? parseInt8 : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser
}

/**
 * A Postgres server through a `pg` pool, shared with every other instance on it.
 * `statementTimeoutMs` replaces the 3 s bound (a test's, where the bound is not what it tests).
 */
export async function openPostgres (url: string, options: { statementTimeoutMs?: number | undefined } = {}): Promise<Database> {
  const statementBoundMs = options.statementTimeoutMs ?? statementTimeoutMs
  const pool = new pg.Pool({
    connectionString: url,
    application_name: 'canopy',
    max: 10,
    // Idle connections stay open: a new one costs a password handshake and a fresh prepare of
    // every named statement, tens of milliseconds on the path of the publish that needs it.
    idleTimeoutMillis: 0,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    statement_timeout: statementBoundMs,
    query_timeout: statementBoundMs + queryTimeoutBeyondStatementMs,
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
  return {
    description: `Postgres at ${describeUrl(url)}`,
    shared: true,
    orm: drizzle(pool, { schema }) as unknown as Orm,
    async query<Row extends object>(text: string, params?: unknown[], name?: string) {
      return (await pool.query<Row>(name === undefined ? { text, values: params } : { name, text, values: params })).rows
    },
    async listen (channel, handlers) {
      return await listenWithReconnect({ connectionString: url, types: pgTypes }, channel, handlers)
    },
    async notify (channel, payload) {
      await pool.query('SELECT pg_notify($1, $2)', [channel, payload])
    },
    async migrate () {
      // A client of its own, outside the pool: the pool's bounds (a statement's 3 s, and the
      // driver's query_timeout) would cut a long migration short, or the wait for the instance
      // migrating before this one.
      const client = new pg.Client({ connectionString: url, application_name: 'canopy-migrate', types: pgTypes })
      await client.connect()
      try {
        // Instances starting together on one database take turns; the first one migrates.
        await client.query('SELECT pg_advisory_lock($1)', [migrationLockKey])
        try {
          const pending = await pendingMigrations({ query: async <Row extends object>(text: string) => (await client.query<Row>(text)).rows })
          if (pending.length > 0) await migrate(drizzle(client, { schema }), { migrationsFolder })
          return pending
        } finally {
          await client.query('SELECT pg_advisory_unlock($1)', [migrationLockKey])
        }
      } finally {
        await client.end()
      }
    },
    async close () {
      await pool.end()
    }
  }
}
