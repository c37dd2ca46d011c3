import t from 'tap'
import { DatabaseUnreachableError } from '../../../src/db/database.js'
import { openDatabase } from '../../../src/db/open.js'
import { buildTestApp, schemaTables, tempDir, unmigratedDataDir } from '../../helpers/app.js'
import { forEachEngine, startPostgres } from '../../helpers/postgres.js'
import pg from 'pg'
import { migrationLockKey, statementTimeoutMs } from '../../../src/db/postgres.js'

forEachEngine(t, async (t, env) => {
  await t.test('migrations build every table on an empty database, once', async (t) => {
    // PGlite's: as its initdb left it, no table yet.
    const db = await openDatabase({ databaseUrl: env.DATABASE_URL, dataDir: env.DATABASE_URL === undefined ? await unmigratedDataDir(t) : tempDir(t) })
    t.teardown(async () => { await db.close() })
    const tables = async () => (await db.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name")).map((row) => row.table_name)
    t.same(await tables(), [], 'empty before')
    await db.migrate()
    t.same(await tables(), schemaTables)
    await db.migrate()
    t.same(await tables(), schemaTables, 'a second run changes nothing')
  })

  await t.test('int8 arrives as a number', async (t) => {
    const app = await buildTestApp(t, env)
    t.same(await app.db.query('SELECT 9007199254740991::int8 AS big'), [{ big: Number.MAX_SAFE_INTEGER }])
  })

  await t.test('listen and notify', async (t) => {
    const app = await buildTestApp(t, env)
    const received: string[] = []
    const arrived = new Promise<void>((resolve) => {
      void app.db.listen('canopy_test', {
        onNotify: (payload) => { received.push(payload); if (received.length === 2) resolve() }
      }).then((listener) => { t.teardown(async () => { await listener.close() }); return app.db.notify('canopy_test', 'one') })
        .then(async () => { await app.db.notify('canopy_test', 'two ✓') })
    })
    await arrived
    t.same(received, ['one', 'two ✓'])
  })
})

t.test('an unreachable database is a clear error naming where, without the password', async (t) => {
  const error = await openDatabase({ databaseUrl: 'postgres://canopy:secret-pw@127.0.0.1:1/canopy', dataDir: tempDir(t) })
    .then(() => undefined, (e: unknown) => e)
  t.type(error, DatabaseUnreachableError)
  t.match(String((error as Error).message), /^Cannot reach the database at 127\.0\.0\.1:1\/canopy: /)
  t.notMatch(String((error as Error).message), /secret-pw/)
})

t.test('a migration waits as long as the instance migrating before it takes, past every statement bound', async (t) => {
  const postgres = await startPostgres(t)
  const db = await openDatabase({ databaseUrl: postgres.url, dataDir: tempDir(t) })
  t.teardown(async () => { await db.close() })
  // Another instance holds the migration lock: this one's migrate must wait, not fail.
  const holder = new pg.Client({ connectionString: postgres.url })
  await holder.connect()
  t.teardown(async () => { await holder.end() })
  await holder.query('SELECT pg_advisory_lock($1)', [migrationLockKey])
  const migrated = db.migrate()
  // Held past the pool's bounds (a statement's 3 s, the driver's 4 s): what is tested is a
  // duration, so this wait is one on purpose.
  await new Promise((resolve) => setTimeout(resolve, statementTimeoutMs + 2000))
  await holder.query('SELECT pg_advisory_unlock($1)', [migrationLockKey])
  t.ok((await migrated).length > 0, 'it applied the migrations once the lock was free')
})
