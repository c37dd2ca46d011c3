import type { Database } from './database.js'

/**
 * Opens the engine the configuration names: PGlite under `dataDir` when `databaseUrl` is
 * unset, a Postgres server when it is set. Each engine loads only when chosen.
 */
export async function openDatabase (options: { databaseUrl?: string | undefined, dataDir: string, statementTimeoutMs?: number | undefined }): Promise<Database> {
  if (options.databaseUrl === undefined) {
    const { openPglite } = await import('./pglite.js')
    return await openPglite(options.dataDir)
  }
  const { openPostgres } = await import('./postgres.js')
  return await openPostgres(options.databaseUrl, { statementTimeoutMs: options.statementTimeoutMs })
}
