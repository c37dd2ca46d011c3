import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, cpSync, readFileSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { packageNativeDir, queryOnce, startEmbeddedPostgres } from '../../scripts/embedded-postgres.js'
import { tempDir, type TestContext } from '../helpers/app.js'

// Only root hands Postgres to another OS user, who may not reach what root can.
const skip = process.getuid?.() === 0 ? false : 'only root runs Postgres as another OS user'

/** The Postgres binaries in a directory only root may enter, as in a checkout under /root (mode 700). */
function closedBinaries (t: TestContext): string {
  const nativeDir = join(tempDir(t, 'canopy-closed-'), 'native')
  cpSync(packageNativeDir(), nativeDir, { recursive: true, verbatimSymlinks: true })
  return nativeDir
}

t.test('as root, binaries the OS user postgres cannot reach are run from a copy it can reach', { skip }, async (t) => {
  const nativeDir = closedBinaries(t)
  const copiesDir = tempDir(t, 'canopy-copies-')
  chmodSync(copiesDir, 0o755)
  const databaseDir = tempDir(t, 'canopy-pg-')
  const { server, adminUrl } = await startEmbeddedPostgres(databaseDir, { persistent: true, nativeDir, copiesDir })
  t.teardown(async () => { await server.stop() })

  const id = (flag: string): number => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }))
  const where = spawnSync(join(nativeDir, 'bin', 'postgres'), ['--version'], { uid: id('-u'), gid: id('-g'), stdio: 'ignore' })
  t.equal((where.error as NodeJS.ErrnoException | undefined)?.code, 'EACCES', 'the user postgres cannot run the binaries where they are')

  const postmaster = readFileSync(join(databaseDir, 'postmaster.pid'), 'utf8').split('\n')[0]
  t.ok(readlinkSync(`/proc/${postmaster}/exe`).startsWith(copiesDir + '/'), 'the server runs from the copy')

  await server.createDatabase('canopy_copied')
  const databaseUrl = adminUrl.replace(/\/postgres$/, '/canopy_copied')
  t.same((await queryOnce(databaseUrl, 'SELECT 1 AS one')).rows, [{ one: 1 }], 'a database of its own')
  await server.stop()
  await server.start()
  t.same((await queryOnce(databaseUrl, "SELECT current_setting('server_encoding') AS encoding")).rows, [{ encoding: 'UTF8' }], 'it starts again after a stop')
})

t.test('as root, with no copy reachable either, the start fails with one line saying what to do', { skip }, async (t) => {
  const closedCopies = tempDir(t, 'canopy-copies-')
  const error = await startEmbeddedPostgres(tempDir(t, 'canopy-pg-'), { persistent: false, nativeDir: closedBinaries(t), copiesDir: closedCopies })
    .then(() => undefined, (e: unknown) => e)
  t.type(error, Error)
  const { message } = error as Error
  t.match(message, /runs as the OS user postgres \(Postgres refuses root\), who can reach neither .* set TEST_DATABASE_URL/)
  t.notMatch(message, /\n/, 'one line')
})
