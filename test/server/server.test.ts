import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { drizzle } from 'drizzle-orm/node-postgres'
import { migrate as migrateWithDrizzle } from 'drizzle-orm/node-postgres/migrator'
import { migratedDataDir, schemaTables, tempDir, unmigratedDataDir } from '../helpers/app.js'
import { connectTcp } from '../helpers/chat.js'
import { startPostgres } from '../helpers/postgres.js'
import { registerOver, ServerProcess } from '../helpers/server-process.js'
import { migrationsFolder } from '../../src/db/database.js'

t.test('bad configuration stops start-up with one line naming the variable', async (t) => {
  const server = new ServerProcess(t, { HISTORY_LIMIT: 'lots' })
  const { code } = await server.exited
  t.equal(code, 1)
  t.equal(server.stderr, 'canopy: Invalid configuration: HISTORY_LIMIT must be integer\n')
})

t.test('an unreachable database stops start-up with one clear line', async (t) => {
  const server = new ServerProcess(t, { DATABASE_URL: 'postgres://u:p@127.0.0.1:1/canopy' })
  const { code } = await server.exited
  t.equal(code, 1)
  t.match(server.stderr, /^canopy: Cannot reach the database at 127\.0\.0\.1:1\/canopy: [^\n]+\n$/)
})

t.test('the server starts, serves, and exits 0 on SIGTERM', async (t) => {
  // On an empty DATA_DIR, as a first start: initdb and every migration before it listens.
  const server = new ServerProcess(t, {})
  const url = await server.listening()
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
  const response = await fetch(`${url}/healthz`)
  t.equal(response.status, 200)
  server.child.kill('SIGTERM')
  const { code, signal } = await server.exited
  t.equal(code, 0)
  t.equal(signal, null)
})

t.test('SIGTERM with a stalled database: publishes answered, 1001 to every socket, exit 0', async (t) => {
  const postgres = await startPostgres(t)
  const server = new ServerProcess(t, { DATABASE_URL: postgres.url, SESSION_SECRET: 'a'.repeat(40) })
  const url = await server.listening()
  const { cookie, wsTicket } = await registerOver(url, 'stalled')
  const clients = await Promise.all([connectTcp(url, cookie, wsTicket, { topic: 'lobby' }), connectTcp(url, cookie, wsTicket, { topic: 'lobby' })])
  for (const client of clients) await client.nextOf('subscribed')

  const lock = await postgres.client()
  await lock.query('BEGIN')
  await lock.query('LOCK TABLE messages IN ACCESS EXCLUSIVE MODE')
  const [publisher] = clients
  for (let i = 0; i < 3; i++) publisher?.send({ type: 'publish', topic: 'lobby', text: `stuck ${i}`, ref: `s${i}` })
  // Stop it once its statement waits for the lock: the publishes are in flight then.
  while ((await postgres.admin("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")).rows[0].n === 0) {
    await new Promise((resolve) => { setTimeout(resolve, 20) })
  }
  server.child.kill('SIGTERM')
  const { code } = await server.exited
  t.equal(code, 0, `exit 0: ${server.stderr}`)
  for (const client of clients) t.equal((await client.closed).code, 1001, 'every socket closed with 1001')
  const answers = publisher?.queued.filter((frame) => frame.type === 'error' || frame.type === 'ack') ?? []
  t.same(answers.map((frame) => frame.type === 'error' ? frame.code : frame.type), ['unavailable', 'unavailable', 'unavailable'], 'every publish answered before the close')
  await lock.query('ROLLBACK')
  t.equal((await postgres.admin('SELECT count(*)::int AS n FROM messages')).rows[0].n, 0, 'nothing stored')
})

/** Runs db:migrate to its end: its exit code, what it printed and what it said on stderr. */
async function migrate (t: Test, env: Record<string, string>): Promise<{ code: number | null, out: string, err: string }> {
  const run = new ServerProcess(t, env, { script: 'src/cli/migrate.ts' })
  const { code } = await run.exited
  return { code, out: run.stdout, err: run.stderr }
}

const migrationTags = (JSON.parse(readFileSync(join(migrationsFolder, 'meta', '_journal.json'), 'utf8')) as { entries: Array<{ tag: string }> }).entries.map((entry) => entry.tag)

t.test('db:migrate says which migrations it applied to the embedded database, then that none are pending', async (t) => {
  // A database with no table yet (initdb on an empty DATA_DIR is the first start's, above).
  const env = { DATA_DIR: await unmigratedDataDir(t) }
  const first = await migrate(t, env)
  t.equal(first.code, 0, first.err)
  t.equal(first.out, `canopy: applied ${migrationTags.length} migration(s) to the embedded database in ${env.DATA_DIR}: ${migrationTags.join(', ')}\n`)
  const second = await migrate(t, env)
  t.equal(second.out, `canopy: no migrations pending for the embedded database in ${env.DATA_DIR}\n`)
})

t.test('db:migrate on DATABASE_URL: applied once, then none pending; a database ahead of the code is refused in one line', async (t) => {
  const postgres = await startPostgres(t)
  const env = { DATA_DIR: tempDir(t), DATABASE_URL: postgres.url }
  const first = await migrate(t, env)
  t.equal(first.code, 0, first.err)
  t.match(first.out, new RegExp(`^canopy: applied ${migrationTags.length} migration\\(s\\) to 127\\.0\\.0\\.1:\\d+/canopy_test_\\w+: ${migrationTags.join(', ')}\n$`))
  const second = await migrate(t, env)
  t.match(second.out, /^canopy: no migrations pending for 127\.0\.0\.1:\d+\/canopy_test_\w+\n$/)
  const tables = await postgres.admin("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name")
  t.same(tables.rows.map((row: { table_name: string }) => row.table_name), schemaTables, 'every table of the schema')

  // A migration of newer code, already applied by it.
  await postgres.admin("INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('from-newer-code', 4102444800000)")
  const ahead = await migrate(t, env)
  t.equal(ahead.code, 1)
  t.equal(ahead.out, '')
  t.match(ahead.err, /^canopy: The database has 1 migration\(s\) this code does not know \(the newest applied 2100-01-01T00:00:00.000Z\): [^\n]+\n$/)
})

t.test('db:migrate on a database of an older release keeps every user, session and message', async (t) => {
  const postgres = await startPostgres(t)
  // The migrations of the release before presence and read positions, as it shipped them.
  const older = tempDir(t)
  const journal = JSON.parse(readFileSync(join(migrationsFolder, 'meta', '_journal.json'), 'utf8')) as { entries: Array<{ tag: string }> }
  const shipped = journal.entries.filter((entry) => entry.tag < '0003')
  mkdirSync(join(older, 'meta'))
  writeFileSync(join(older, 'meta', '_journal.json'), JSON.stringify({ ...journal, entries: shipped }))
  for (const { tag } of shipped) copyFileSync(join(migrationsFolder, `${tag}.sql`), join(older, `${tag}.sql`))
  const client = await postgres.client()
  await migrateWithDrizzle(drizzle(client), { migrationsFolder: older })
  await client.query(`INSERT INTO users (name, password_hash) VALUES ('keeper', 'hash');
    INSERT INTO sessions (sid, user_id, data, expires_at) SELECT 'sid-1', id, '{}', now() + interval '1 day' FROM users;
    INSERT INTO topics (name, last_id) VALUES ('kept', 2);
    INSERT INTO messages (topic, id, author_id, author, text) SELECT 'kept', g, u.id, 'keeper', 'message ' || g FROM users u, generate_series(1, 2) g;`)

  const run = await migrate(t, { DATA_DIR: tempDir(t), DATABASE_URL: postgres.url })
  t.equal(run.code, 0, run.err)
  const newer = journal.entries.filter((entry) => entry.tag >= '0003').map((entry) => entry.tag)
  t.match(run.out, new RegExp(`^canopy: applied ${newer.length} migration\\(s\\) to [^ ]+: ${newer.join(', ')}\n$`), 'only the newer migrations')
  const kept = await postgres.admin(`SELECT (SELECT count(*) FROM users)::int AS users, (SELECT count(*) FROM sessions)::int AS sessions,
    (SELECT string_agg(text, ',' ORDER BY id) FROM messages) AS texts`)
  t.same(kept.rows[0], { users: 1, sessions: 1, texts: 'message 1,message 2' }, 'every user, session and message kept')
  const tables = await postgres.admin("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name")
  t.same(tables.rows.map((row: { table_name: string }) => row.table_name), schemaTables, 'and every table of this release')
})

t.test('a port in use stops start-up with one clear line', async (t) => {
  const holder = createServer()
  await new Promise<void>((resolve) => { holder.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { holder.close() })
  const port = (holder.address() as AddressInfo).port
  const server = new ServerProcess(t, { PORT: String(port), DATA_DIR: await migratedDataDir(t) })
  const { code } = await server.exited
  t.equal(code, 1)
  t.equal(server.stderr, `canopy: Port ${port} on 127.0.0.1 is in use: stop what holds it, or set PORT\n`)
})
