import { describeUrl } from '../db/database.js'
import { pendingMigrations } from '../db/migrations.js'
import { openDatabase } from '../db/open.js'
import { configFromEnvironment, startOrExplain } from '../startup.js'
import { setAdmin } from '../users.js'

// The operator's way to make a user an administrator or not, on DATABASE_URL or on the
// embedded database under DATA_DIR (stop the server first: one process owns that one).
// One line out; exit 0 when done, 1 when it could not be (an unknown name, a database that
// is not migrated), 2 on bad arguments.

const usage = 'usage: npm run admin -- grant NAME | npm run admin -- revoke NAME'

const [command, name, ...extra] = process.argv.slice(2)
if ((command !== 'grant' && command !== 'revoke') || name === undefined || name === '' || extra.length > 0) {
  console.error(usage)
  process.exitCode = 2
} else {
  const grant = command === 'grant'
  await startOrExplain(async () => {
    const config = configFromEnvironment()
    const db = await openDatabase(config)
    const where = config.databaseUrl === undefined ? `the embedded database in ${config.dataDir}` : describeUrl(config.databaseUrl)
    try {
      const pending = await pendingMigrations(db)
      if (pending.length > 0) {
        console.error(`canopy: ${where} has ${pending.length} migration(s) pending: run npm run db:migrate first`)
        process.exitCode = 1
        return
      }
      const changed = await setAdmin(db, name, grant)
      if (changed === undefined) {
        console.error(`canopy: nobody is called ${name} in ${where}`)
        process.exitCode = 1
        return
      }
      const { user, wasAdmin } = changed
      console.log(`canopy: ${user.name} ${grant
        ? wasAdmin ? 'is already an administrator' : 'is now an administrator'
        : wasAdmin ? 'is no longer an administrator' : 'was not an administrator'} (${where})`)
    } finally {
      await db.close()
    }
  })
}
