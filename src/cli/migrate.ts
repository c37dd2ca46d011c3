import { describeUrl } from '../db/database.js'
import { openDatabase } from '../db/open.js'
import { configFromEnvironment, startOrExplain } from '../startup.js'

// The operator's step before rolling out instances on a shared Postgres: apply pending
// migrations to DATABASE_URL, or to the embedded database under DATA_DIR.
await startOrExplain(async () => {
  const config = configFromEnvironment()
  const db = await openDatabase(config)
  const where = config.databaseUrl === undefined ? `the embedded database in ${config.dataDir}` : describeUrl(config.databaseUrl)
  try {
    const applied = await db.migrate()
    console.log(applied.length === 0
      ? `canopy: no migrations pending for ${where}`
      : `canopy: applied ${applied.length} migration(s) to ${where}: ${applied.join(', ')}`)
  } finally {
    await db.close()
  }
})
