import { describeUrl, openDatabase } from '../db/database.js'
import { configFromEnvironment, startOrExplain } from '../startup.js'

// The operator's step before rolling out instances on a shared Postgres: apply pending
// migrations to DATABASE_URL, or to the embedded database under DATA_DIR.
await startOrExplain(async () => {
  const config = configFromEnvironment()
  const db = await openDatabase(config)
  try {
    await db.migrate()
  } finally {
    await db.close()
  }
  console.log(`canopy: migrations applied to ${config.databaseUrl === undefined ? `the embedded database in ${config.dataDir}` : describeUrl(config.databaseUrl)}`)
})
