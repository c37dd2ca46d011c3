import { existsSync } from 'node:fs'
import { ConfigError, loadConfig } from '../config.js'
import { DatabaseUnreachableError, describeUrl, openDatabase } from '../db/database.js'

// The operator's step before rolling out instances on a shared Postgres: apply pending
// migrations to DATABASE_URL, or to the embedded database under DATA_DIR.
if (existsSync('.env')) process.loadEnvFile('.env')
try {
  const config = loadConfig(process.env)
  const db = await openDatabase(config)
  try {
    await db.migrate()
  } finally {
    await db.close()
  }
  console.log(`canopy: migrations applied to ${config.databaseUrl === undefined ? `the embedded database in ${config.dataDir}` : describeUrl(config.databaseUrl)}`)
} catch (error) {
  if (!(error instanceof ConfigError || error instanceof DatabaseUnreachableError)) throw error
  console.error(`canopy: ${error.message}`)
  process.exitCode = 1
}
