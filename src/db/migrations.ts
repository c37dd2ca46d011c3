import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { migrationsFolder, type Queryable } from './database.js'

/**
 * Which of this code's migrations a database still needs, read before drizzle's migrator
 * runs (it applies what is newer than the last one applied, and says nothing either way).
 */

/** The database holds migrations this code does not know: it is newer than the code. */
export class MigrationsAheadError extends Error {
  override name = 'MigrationsAheadError'
}

interface JournalEntry { tag: string, when: number }

function journal (): JournalEntry[] {
  const text = readFileSync(join(migrationsFolder, 'meta', '_journal.json'), 'utf8')
  return (JSON.parse(text) as { entries: JournalEntry[] }).entries
}

/** The tags of the migrations still to apply, oldest first; refuses a database that is ahead. */
export async function pendingMigrations (db: Queryable): Promise<string[]> {
  const [{ exists } = { exists: false }] = await db.query<{ exists: boolean }>(
    "SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL AS exists")
  const applied = exists
    ? (await db.query<{ created_at: number }>('SELECT created_at FROM drizzle.__drizzle_migrations')).map((row) => Number(row.created_at))
    : []
  const entries = journal()
  const known = new Set(entries.map((entry) => entry.when))
  const unknown = applied.filter((when) => !known.has(when))
  if (unknown.length > 0) {
    throw new MigrationsAheadError(`The database has ${unknown.length} migration(s) this code does not know ` +
      `(the newest applied ${new Date(Math.max(...unknown)).toISOString()}): run the code that made them, or a newer one`)
  }
  const last = Math.max(0, ...applied)
  return entries.filter((entry) => entry.when > last).map((entry) => entry.tag)
}
