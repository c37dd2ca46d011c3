import t from 'tap'
import { buildApp } from '../../server/app.js'
import { buildTestApp, migratedDataDir, register, testConfig, unhurriedCommits } from '../helpers/app.js'
import { forEachEngine, startPostgres } from '../helpers/postgres.js'

t.test('a login survives an app restart on the same data directory', async (t) => {
  const config = testConfig(t, { DATA_DIR: await migratedDataDir(t) })
  const first = await buildApp(config)
  const { cookie } = await register(first)
  const ticket = (await first.inject({ url: '/api/me', headers: { cookie } })).json().wsTicket
  await first.close()

  const second = await buildApp(config)
  t.teardown(async () => { await second.close() })
  const me = await second.inject({ url: '/api/me', headers: { cookie } })
  t.equal(me.statusCode, 200)
  t.equal(me.json().wsTicket, ticket, 'the same session, the same ticket')
})

t.test('a login on one instance is valid on another on the same database', async (t) => {
  const postgres = await startPostgres(t)
  const shared = { DATABASE_URL: postgres.url, SESSION_SECRET: 'one-secret-shared-by-both-instances!' }
  const a = await buildTestApp(t, shared)
  const b = await buildTestApp(t, shared)
  const { cookie, username } = await register(a)
  const me = await b.inject({ url: '/api/me', headers: { cookie } })
  t.equal(me.statusCode, 200)
  t.equal(me.json().user.name, username)
  t.equal((await b.inject({ method: 'POST', url: '/api/logout', headers: { cookie } })).statusCode, 204)
  t.equal((await a.inject({ url: '/api/me', headers: { cookie } })).statusCode, 401, 'a logout on one is a logout on all')
})

t.test('expired sessions are refused and deleted', async (t) => {
  const app = await buildTestApp(t)
  const expired = await register(app)
  const live = await register(app)
  await app.db.query("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = $1", [expired.id])
  t.equal((await app.inject({ url: '/api/me', headers: { cookie: expired.cookie } })).statusCode, 401)
  t.equal(await app.sessionStore.deleteExpired(), 1)
  t.same(await app.db.query('SELECT user_id FROM sessions ORDER BY user_id'), [{ user_id: live.id }])
  t.equal((await app.inject({ url: '/api/me', headers: { cookie: live.cookie } })).statusCode, 200)
})

forEachEngine(t, async (t, env) => {
  // 70,000 rows on a busy machine: the statement bound is not what these test.
  const app = await buildTestApp(t, env, unhurriedCommits)

  await t.test('the session check of open sockets takes more sessions than a statement takes parameters (65,535)', async (t) => {
    const { id } = await register(app)
    const [live] = await app.db.query<{ sid: string }>('SELECT sid FROM sessions WHERE user_id = $1', [id])
    // 70,000 sessions, every other one expired.
    await app.db.query(`INSERT INTO sessions (sid, user_id, data, expires_at)
      SELECT 'bulk-' || i, NULL, '{}'::jsonb, now() + CASE WHEN i % 2 = 0 THEN interval '1 hour' ELSE interval '-1 hour' END
      FROM generate_series(1, 70000) AS i`)
    const sids = [...Array.from({ length: 70_000 }, (_, i) => `bulk-${i + 1}`), live?.sid ?? '', 'never-stored']
    const valid = await app.sessionStore.stillValid(sids)
    t.equal(valid.size, 35_001, 'the 35,000 unexpired ones and the live login')
    t.ok(valid.has('bulk-70000') && valid.has(live?.sid ?? ''))
    t.notOk(valid.has('bulk-69999') || valid.has('never-stored'))
    await app.db.query("DELETE FROM sessions WHERE sid LIKE 'bulk-%'")
  })

  await t.test('the session of a disabled user is neither read nor still valid; enabled again, it is', async (t) => {
    const { id, cookie } = await register(app)
    const other = await register(app)
    const sids = (await app.db.query<{ sid: string }>('SELECT sid FROM sessions WHERE user_id IN ($1, $2) ORDER BY user_id', [id, other.id])).map((row) => row.sid)
    await app.db.query('UPDATE users SET disabled_at = now() WHERE id = $1', [id])
    t.equal((await app.inject({ url: '/api/me', headers: { cookie } })).statusCode, 401)
    t.same([...await app.sessionStore.stillValid(sids)], [sids[1]], 'only the other user\'s')
    await app.db.query('UPDATE users SET disabled_at = NULL WHERE id = $1', [id])
    t.equal((await app.inject({ url: '/api/me', headers: { cookie } })).statusCode, 200)
    t.equal((await app.sessionStore.stillValid(sids)).size, 2)
  })

  await t.test('endOldest keeps the newest sessions of a user, expired ones going first; endAllOf ends them all', async (t) => {
    const { id } = await register(app)
    const other = await register(app)
    await app.db.query(`INSERT INTO sessions (sid, user_id, data, expires_at)
      SELECT 'old-' || i, $1, '{}'::jsonb, now() + i * interval '1 minute' - interval '3 minutes' FROM generate_series(1, 4) AS i`, [id])
    // The registration's session expires in 7 days: the newest of all.
    t.same((await app.sessionStore.endOldest({ userId: id, keep: 3 })).sort(), ['old-1', 'old-2'], 'expired old-1 and old-2 go first')
    t.same(await app.sessionStore.endOldest({ userId: id, keep: 3 }), [], 'nothing more while within the cap')
    t.equal((await app.sessionStore.endAllOf(id)).length, 3)
    t.same(await app.db.query('SELECT user_id FROM sessions WHERE user_id IN ($1, $2)', [id, other.id]), [{ user_id: other.id }], 'another user\'s session stays')
  })
})
