import t from 'tap'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { buildTestApp, register, uniqueName } from '../helpers/app.js'
import { connect, type ChatClient } from '../helpers/chat.js'
import { sessionCookie } from '../helpers/http.js'
import { startInstances } from '../helpers/instances.js'
import { adminPrefix } from '../../plugins/admin-api.js'
import { hashPassword } from '../../src/passwords.js'
import { CloseCode, usersPageSize } from '../../src/protocol.js'
import { createUser, setAdmin } from '../../src/users.js'

/**
 * Every route the app serves under `prefix`, method by method, read from Fastify's own
 * routing tree: a route added there later is in the list without anyone adding it here.
 */
function routesUnder (app: FastifyInstance, prefix: string): Array<{ method: string, url: string }> {
  const routes: Array<{ method: string, url: string }> = []
  const pathAtDepth: string[] = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^(?<indent>[│ ]*)[├└]── (?<segment>.+?)(?: \((?<methods>[A-Z, ]+)\))?$/.exec(line)
    if (match?.groups === undefined) continue
    const { indent = '', segment = '', methods } = match.groups
    const depth = indent.length / 4
    const path = (depth === 0 ? '' : pathAtDepth[depth - 1] ?? '') + segment
    pathAtDepth[depth] = path
    if (methods === undefined || !path.startsWith(prefix)) continue
    for (const method of methods.split(', ')) if (method !== 'HEAD') routes.push({ method, url: path })
  }
  return routes
}

const login = async (app: FastifyInstance, username: string, password = 'correct horse'): Promise<LightMyRequestResponse> =>
  await app.inject({ method: 'POST', url: '/api/login', payload: { username, password } })

/** Registers a user and makes them an administrator, as `npm run admin -- grant` does. */
async function registerAdmin (app: FastifyInstance): Promise<{ cookie: string, username: string, id: number }> {
  const user = await register(app, uniqueName('Admin'))
  await setAdmin(app.db, user.username, true)
  return user
}

/** A socket of the session, subscribed. */
async function openSocket (app: FastifyInstance, cookie: string, topic = 'general'): Promise<ChatClient> {
  const client = await connect(app, cookie, { topic })
  await client.nextOf('subscribed')
  return client
}

t.test('administration on one instance', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const as = (cookie: string) => async (request: InjectOptions): Promise<LightMyRequestResponse> =>
    await app.inject({ ...request, headers: { ...request.headers, cookie } })
  const asAdmin = as(admin.cookie)

  await t.test('every route under /api/admin answers a non-administrator 403 forbidden, and no session 401', async (t) => {
    const routes = routesUnder(app, adminPrefix)
    const found = routes.map(({ method, url }) => `${method} ${url}`)
    for (const route of ['GET /api/admin/users', 'POST /api/admin/users', 'POST /api/admin/users/:name/disable', 'POST /api/admin/users/:name/enable']) {
      t.ok(found.includes(route), `${route} is found in the routing tree`)
    }
    const user = await register(app)
    const target = await register(app)
    const payload = { username: uniqueName(), password: 'correct horse' }
    for (const { method, url } of routes) {
      // Every parameter a name: the check comes before anything reads them.
      const request = { method: method as InjectOptions['method'], url: url.replaceAll(/:\w+/g, target.username), payload: method === 'GET' ? undefined : payload }
      const refused = await as(user.cookie)(request)
      t.equal(refused.statusCode, 403, `${method} ${url}`)
      t.same(refused.json(), { error: 'forbidden', message: 'Only an administrator may do this' })
      t.equal((await app.inject(request)).statusCode, 401, `${method} ${url} without a session`)
    }
    t.equal((await login(app, target.username)).statusCode, 200, 'nothing was done to the target')
    t.equal((await login(app, payload.username)).statusCode, 401, 'nobody was created')
  })

  await t.test('a grant and a revoke hold at once, and GET /api/me says admin', async (t) => {
    const user = await register(app)
    const me = async (): Promise<unknown> => (await app.inject({ url: '/api/me', headers: { cookie: user.cookie } })).json().user
    t.same(await me(), { id: user.id, name: user.username, admin: false })
    await setAdmin(app.db, user.username, true)
    t.same(await me(), { id: user.id, name: user.username, admin: true })
    t.equal((await as(user.cookie)({ url: '/api/admin/users' })).statusCode, 200, 'the same session, now an administrator')
    await setAdmin(app.db, user.username, false)
    t.equal((await as(user.cookie)({ url: '/api/admin/users' })).statusCode, 403, 'revoked: refused at the next request')
    t.same(await me(), { id: user.id, name: user.username, admin: false })
  })

  await t.test('disable: the user\'s sockets close with 4401, every session ends, a login answers 403 disabled; enable undoes it', async (t) => {
    const bob = await register(app)
    const second = sessionCookie(await login(app, bob.username))
    const bystander = await register(app)
    const sockets = [await openSocket(app, bob.cookie), await openSocket(app, second)]
    const other = await openSocket(app, bystander.cookie)

    const disabled = await asAdmin({ method: 'POST', url: `/api/admin/users/${bob.username.toUpperCase()}/disable` })
    t.equal(disabled.statusCode, 204, 'the name in any case')
    for (const socket of sockets) t.same(await socket.closed, { code: CloseCode.loggedOut, reason: 'logged out' })
    for (const cookie of [bob.cookie, second]) t.equal((await as(cookie)({ url: '/api/me' })).statusCode, 401, 'the session ended')
    const refused = await login(app, bob.username)
    t.equal(refused.statusCode, 403)
    t.same(refused.json(), { error: 'disabled', message: 'This account is disabled by an administrator' })
    t.notOk(refused.cookies.some((cookie) => cookie.name === 'canopy.sid'), 'and no session')
    t.same((await login(app, bob.username, 'wrong password')).json().error, 'invalid_credentials', 'a wrong password says nothing of the account')
    t.equal((await asAdmin({ method: 'POST', url: `/api/admin/users/${bob.username}/disable` })).statusCode, 204, 'disabling again is harmless')

    other.send({ type: 'subscribe', topic: 'still-here' })
    t.match(await other.nextOf('subscribed'), { topic: 'still-here' }, 'another user\'s socket stays open')
    other.close()

    t.equal((await asAdmin({ method: 'POST', url: `/api/admin/users/${bob.username}/enable` })).statusCode, 204)
    const back = await login(app, bob.username)
    t.equal(back.statusCode, 200, 'enabled: logs in again')
    t.equal((await as(sessionCookie(back))({ url: '/api/me' })).statusCode, 200)
    t.equal((await asAdmin({ method: 'POST', url: `/api/admin/users/${bob.username}/enable` })).statusCode, 204, 'enabling again is harmless')
  })

  await t.test('a session of a disabled user that survived is refused: by HTTP at once, its sockets by the session check', async (t) => {
    // As if a login had stored its session just after the disable deleted the others.
    const carol = await register(app)
    const socket = await openSocket(app, carol.cookie)
    await app.db.query('UPDATE users SET disabled_at = now() WHERE id = $1', [carol.id])
    t.equal((await as(carol.cookie)({ url: '/api/me' })).statusCode, 401)
    t.equal((await as(carol.cookie)({ url: '/api/topics' })).statusCode, 401)
    await app.closeEndedSessions()
    t.equal((await socket.closed).code, CloseCode.loggedOut)
    await app.db.query('UPDATE users SET disabled_at = NULL WHERE id = $1', [carol.id])
    t.equal((await as(carol.cookie)({ url: '/api/me' })).statusCode, 200, 'enabled again, the session that survived is valid again')
  })

  await t.test('an unknown name is 404 unknown_user; an administrator cannot disable themself', async (t) => {
    for (const action of ['disable', 'enable']) {
      const response = await asAdmin({ method: 'POST', url: `/api/admin/users/nobody_${process.pid}/${action}` })
      t.equal(response.statusCode, 404, action)
      t.same(response.json(), { error: 'unknown_user', message: `Nobody is called nobody_${process.pid}` })
    }
    for (const name of [admin.username, admin.username.toLowerCase()]) {
      const self = await asAdmin({ method: 'POST', url: `/api/admin/users/${name}/disable` })
      t.equal(self.statusCode, 400)
      t.same(self.json(), { error: 'bad_request', message: 'An administrator cannot disable their own account' })
    }
    t.equal((await as(admin.cookie)({ url: '/api/me' })).statusCode, 200, 'still logged in')
  })

  await t.test('POST /api/admin/users creates an account, with the rules of register, and no session', async (t) => {
    const username = uniqueName('Made')
    const created = await asAdmin({ method: 'POST', url: '/api/admin/users', payload: { username, password: 'password123' } })
    t.equal(created.statusCode, 201)
    t.match(created.json(), { user: { id: Number, name: username } })
    t.notOk(created.cookies.some((cookie) => cookie.name === 'canopy.sid'), 'the administrator\'s session is left as it was')
    t.equal((await as(admin.cookie)({ url: '/api/me' })).json().user.name, admin.username)
    t.equal((await login(app, username, 'password123')).statusCode, 200, 'the new user logs in')

    const taken = await asAdmin({ method: 'POST', url: '/api/admin/users', payload: { username: username.toUpperCase(), password: 'password123' } })
    t.equal(taken.statusCode, 409)
    t.match(taken.json(), { error: 'name_taken' })
    const invalid: Array<[unknown, string]> = [
      [{ username: 'ab', password: 'password123' }, 'A name is 3 to 32 characters: letters, digits, _ . or -'],
      [{ username: uniqueName(), password: 'short' }, 'A password is 8 to 256 characters'],
      [{ username: uniqueName(), password: 'password123', admin: true }, 'Send {"username","password"} as JSON']
    ]
    for (const [payload, message] of invalid) {
      const response = await asAdmin({ method: 'POST', url: '/api/admin/users', payload: payload as Record<string, unknown> })
      t.equal(response.statusCode, 400, JSON.stringify(payload))
      t.same(response.json(), { error: 'bad_request', message })
    }
  })
})

t.test('GET /api/admin/users: by name without regard to case, 100 a page, after a name', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  // 230 users in mixed case, every 7th disabled, made by SQL: 230 password hashes would take a while.
  await app.db.query(`INSERT INTO users (name, password_hash, disabled_at)
    SELECT CASE WHEN i % 2 = 0 THEN 'User' ELSE 'user' END || lpad(i::text, 3, '0'), 'x', CASE WHEN i % 7 = 0 THEN now() END
    FROM generate_series(1, 230) AS i`)
  const page = async (after?: string) => {
    const response = await app.inject({ url: '/api/admin/users', query: after === undefined ? {} : { after }, headers: { cookie: admin.cookie } })
    t.equal(response.statusCode, 200)
    return response.json<{ users: Array<{ name: string, admin: boolean, disabled: boolean, createdAt: string }> }>().users
  }
  const all = (await app.db.query<{ name: string }>('SELECT name FROM users ORDER BY lower(name)')).map((row) => row.name)
  t.equal(all.length, 231)

  const first = await page()
  t.equal(first.length, usersPageSize)
  t.same(first.map((user) => user.name), all.slice(0, 100))
  t.same(first[0], { name: admin.username, admin: true, disabled: false, createdAt: first[0]?.createdAt })
  t.ok(new Date(first[0]?.createdAt ?? '').getTime() > 0 && first[0]?.createdAt.endsWith('Z'), 'createdAt is ISO-8601 in UTC')
  t.match(first.find((user) => user.name === 'User014'), { admin: false, disabled: true })
  t.match(first.find((user) => user.name === 'user015'), { admin: false, disabled: false })

  const second = await page(first.at(-1)?.name.toUpperCase())
  t.same(second.map((user) => user.name), all.slice(100, 200), 'after a name in any case')
  const last = await page(second.at(-1)?.name)
  t.same(last.map((user) => user.name), all.slice(200))
  t.same(await page(last.at(-1)?.name), [], 'after the last: an empty page')
  t.same((await page('')).map((user) => user.name), all.slice(0, 100), 'an empty after is the first page')
  t.same((await page('user1')).map((user) => user.name).slice(0, 2), ['User100', 'user101'], 'after a name nobody has: the names that sort after it')

  const tooLong = await app.inject({ url: '/api/admin/users', query: { after: 'x'.repeat(65) }, headers: { cookie: admin.cookie } })
  t.equal(tooLong.statusCode, 400)
})

t.test('REGISTRATION=closed: register answers 403 registration_closed; accounts an administrator creates work', async (t) => {
  const app = await buildTestApp(t, { REGISTRATION: 'closed' })
  const refused = await app.inject({ method: 'POST', url: '/api/register', payload: { username: uniqueName(), password: 'password123' } })
  t.equal(refused.statusCode, 403)
  t.same(refused.json(), { error: 'registration_closed', message: 'Registration is closed on this server: an administrator creates accounts' })
  t.notOk(refused.cookies.some((cookie) => cookie.name === 'canopy.sid'), 'no session')
  t.equal((await app.inject({ method: 'POST', url: '/api/register', payload: {} })).statusCode, 403, 'whatever the body')

  // The first administrator: an account made by the operator, then `npm run admin -- grant`.
  const adminName = uniqueName('Root')
  await createUser(app.db.orm, adminName, await hashPassword('correct horse'))
  await setAdmin(app.db, adminName, true)
  const adminCookie = sessionCookie(await login(app, adminName))
  const username = uniqueName('Invited')
  const created = await app.inject({ method: 'POST', url: '/api/admin/users', headers: { cookie: adminCookie }, payload: { username, password: 'password123' } })
  t.equal(created.statusCode, 201)
  const loggedIn = await login(app, username, 'password123')
  t.equal(loggedIn.statusCode, 200)
  const me = await app.inject({ url: '/api/me', headers: { cookie: sessionCookie(loggedIn) } })
  t.match(me.json(), { user: { name: username, admin: false }, wsTicket: String })
  const socket = await openSocket(app, sessionCookie(loggedIn))
  socket.close()
})

t.test('on two instances: a disable closes the user\'s sockets with 4401 on both, and holds on both', async (t) => {
  const { instances: [{ app: a, user: admin }, { app: b, user: bob }] } = await startInstances(t, 2)
  await setAdmin(a.db, admin.username, true)
  const onA = await openSocket(a, bob.cookie)
  const onB = await openSocket(b, bob.cookie)
  const disabled = await a.inject({ method: 'POST', url: `/api/admin/users/${bob.username}/disable`, headers: { cookie: admin.cookie } })
  t.equal(disabled.statusCode, 204)
  t.equal((await onA.closed).code, CloseCode.loggedOut, 'on the instance that disabled')
  t.equal((await onB.closed).code, CloseCode.loggedOut, 'on the other one')
  t.equal((await login(b, bob.username)).statusCode, 403, 'a login on the other instance is refused')
  t.equal((await b.inject({ method: 'POST', url: `/api/admin/users/${bob.username}/enable`, headers: { cookie: admin.cookie } })).statusCode, 204)
  t.equal((await login(a, bob.username)).statusCode, 200)
})
