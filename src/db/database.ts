import { fileURLToPath } from 'node:url'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import { projectRoot } from '../paths.js'
import type * as schema from './schema.js'

/**
 * The one small interface over the two engines: nothing above it knows whether PGlite
 * (src/db/pglite.ts) or a Postgres server (src/db/postgres.ts) runs. The engines build on
 * this file; src/db/open.ts chooses between them.
 */

export const migrationsFolder = fileURLToPath(new URL('migrations/', projectRoot))

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

export interface Database extends Queryable {
  /** For logs: which engine, and where. */
  readonly description: string
  /**
   * Whether other instances may use this database at the same time (a Postgres server):
   * then what one instance commits must be announced to the others with NOTIFY.
   */
  readonly shared: boolean
  readonly orm: Orm
  listen(channel: string, handlers: ListenHandlers): Promise<Listener>
  notify(channel: string, payload: string): Promise<void>
  /**
   * Applies pending migrations from migrations/ and returns their tags (none: nothing was
   * pending); refuses a database that holds migrations this code does not know. Safe when
   * many instances start together.
   */
  migrate(): Promise<string[]>
  close(): Promise<void>
}

export class DatabaseUnreachableError extends Error {
  override name = 'DatabaseUnreachableError'
}

/** int8 as a JS number: message ids and counts stay far below 2^53. */
export const parseInt8 = (value: string): number => Number(value)

/** Where a URL points, without its password, for error messages and logs. */
export function describeUrl (url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname}:${parsed.port === '' ? '5432' : parsed.port}${parsed.pathname}`
  } catch {
    return 'the DATABASE_URL'
  }
}
