import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { openDatabase } from '../../../src/db/open.js'
import { buildTestApp, register, tempDir } from '../../helpers/app.js'
import { ServerProcess } from '../../helpers/server-process.js'

/** Runs `npm run admin -- …args` (from source) to its end: its exit code, stdout and stderr. */
async function admin (t: Test, dataDir: string, args: string[]): Promise<{ code: number | null, out: string, err: string }> {
  const run = new ServerProcess(t, { DATA_DIR: dataDir }, { script: 'src/cli/admin.ts', args })
  const { code } = await run.exited
  return { code, out: run.stdout, err: run.stderr }
}

/** Whether each of these users is an administrator, read from the data directory's database. */
async function adminFlags (dataDir: string): Promise<Record<string, boolean>> {
  const db = await openDatabase({ databaseUrl: undefined, dataDir })
  try {
    const rows = await db.query<{ name: string, admin: boolean }>('SELECT name, admin FROM users ORDER BY name')
    return Object.fromEntries(rows.map((row) => [row.name, row.admin]))
  } finally {
    await db.close()
  }
}

t.test('npm run admin runs the compiled command, built first when the sources changed, as db:migrate does', async (t) => {
  const { scripts } = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }
  t.equal(scripts.admin, 'node dist/src/cli/admin.js')
  t.equal(scripts.preadmin, scripts['predb:migrate'])
})

t.test('bad arguments: the usage line on stderr, exit code 2, the database left alone', async (t) => {
  const dataDir = tempDir(t)
  for (const args of [[], ['promote', 'alice'], ['grant', 'alice', 'bob']]) {
    const run = await admin(t, dataDir, args)
    t.equal(run.code, 2, JSON.stringify(args))
    t.equal(run.err, 'usage: npm run admin -- grant NAME | npm run admin -- revoke NAME\n')
    t.equal(run.out, '')
  }
})

t.test('a database not migrated yet is refused in one line: run db:migrate first', async (t) => {
  const dataDir = tempDir(t)
  const run = await admin(t, dataDir, ['grant', 'alice'])
  t.equal(run.code, 1)
  t.match(run.err, new RegExp(`^canopy: the embedded database in ${dataDir} has \\d+ migration\\(s\\) pending: run npm run db:migrate first\n$`))
})

t.test('grant and revoke on the embedded database: one line each, the name as registered', async (t) => {
  // A migrated data directory with two users, which the app leaves: one process owns it.
  const app = await buildTestApp(t)
  const { dataDir } = app.config
  await register(app, 'Alice_cli')
  await register(app, 'bob_cli')
  await app.close()
  const where = `(the embedded database in ${dataDir})`

  const granted = await admin(t, dataDir, ['grant', 'alice_CLI'])
  t.equal(granted.code, 0, granted.err)
  t.equal(granted.out, `canopy: Alice_cli is now an administrator ${where}\n`)
  t.same(await adminFlags(dataDir), { Alice_cli: true, bob_cli: false })

  const again = await admin(t, dataDir, ['grant', 'Alice_cli'])
  t.equal(again.code, 0)
  t.equal(again.out, `canopy: Alice_cli is already an administrator ${where}\n`)

  const revoked = await admin(t, dataDir, ['revoke', 'Alice_cli'])
  t.equal(revoked.code, 0, revoked.err)
  t.equal(revoked.out, `canopy: Alice_cli is no longer an administrator ${where}\n`)

  const unknown = await admin(t, dataDir, ['grant', 'nobody_here'])
  t.equal(unknown.code, 1)
  t.equal(unknown.out, '')
  t.equal(unknown.err, `canopy: nobody is called nobody_here in the embedded database in ${dataDir}\n`)
  t.same(await adminFlags(dataDir), { Alice_cli: false, bob_cli: false }, 'nobody was changed')
})
