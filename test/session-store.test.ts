import t from 'tap'
import { buildApp } from '../src/app.js'
import { buildTestApp, register, tempDir, testConfig } from './helpers/app.js'
import { startPostgres } from './helpers/postgres.js'

t.test('a login survives an app restart on the same data directory', async (t) => {
  const config = testConfig(t, { DATA_DIR: tempDir(t) })
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
