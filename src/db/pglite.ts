import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { drizzle } from 'drizzle-orm/pglite'
import { migrate } from 'drizzle-orm/pglite/migrator'
import { migrationsFolder, parseInt8, type Database, type Orm } from './database.js'
import { pendingMigrations } from './migrations.js'
import * as schema from './schema.js'

/**
 * The embedded engine: a real Postgres compiled to WASM, in this process, kept under
 * DATA_DIR/pglite. One process owns it, so no other instance shares it.
 */
export async function openPglite (dataDir: string): Promise<Database> {
  const directory = join(dataDir, 'pglite')
  mkdirSync(directory, { recursive: true })
  const client = new PGlite(directory, { parsers: { 20: parseInt8 } })
  await client.waitReady
  const orm = drizzle(client, { schema })
  const database: Database = {
    description: `embedded PGlite in ${directory}`,
    shared: false,
    orm: orm as unknown as Orm,
    async query<Row extends object>(text: string, params?: unknown[]) {
      return (await client.query<Row>(text, params)).rows
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
      const pending = await pendingMigrations(database)
      if (pending.length > 0) await migrate(orm, { migrationsFolder })
      return pending
    },
    async close () {
      if (!client.closed) await client.close()
    }
  }
  return database
}
