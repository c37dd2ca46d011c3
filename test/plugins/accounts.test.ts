import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { buildTestApp, register, uniqueName } from '../helpers/app.js'
import { sessionCookie } from '../helpers/http.js'
import { forEachEngine, startPostgres } from '../helpers/postgres.js'

forEachEngine(t, async (t, env) => {
  const app = await buildTestApp(t, env)
  const post = async (url: string, payload: unknown, cookie?: string) =>
    await app.inject({ method: 'POST', url, payload: payload as Record<string, unknown>, headers: cookie === undefined ? {} : { cookie } })

  await t.test('register creates the user and a logged-in session', async (t) => {
    const username = uniqueName('Reg')
    const response = await post('/api/register', { username, password: 'password123' })
    t.equal(response.statusCode, 201)
    const body = response.json()
    t.match(body, { user: { id: Number, name: username } })
    const cookie = response.cookies.find((c) => c.name === 'canopy.sid')
    t.ok(cookie, 'a session cookie')
    t.equal(cookie?.httpOnly, true)
    t.equal(cookie?.sameSite, 'Lax')
    t.notOk(cookie?.secure, 'not Secure outside production')
    const me = await app.inject({ url: '/api/me', headers: { cookie: sessionCookie(response) } })
    t.equal(me.statusCode, 200)
    t.same(me.json().user, { ...body.user, admin: false }, 'the user, and not an administrator')
    t.match(me.json().wsTicket, /^[A-Za-z0-9_-]{20,}$/)
  })

  await t.test('a taken name is refused whatever its case', async (t) => {
    const username = uniqueName('Taken')
    t.equal((await post('/api/register', { username, password: 'password123' })).statusCode, 201)
    const again = await post('/api/register', { username: username.toLowerCase(), password: 'password456' })
    t.equal(again.statusCode, 409)
    t.match(again.json(), { error: 'name_taken', message: String })
  })

  const nameRule = 'A name is 3 to 32 characters: letters, digits, _ . or -'
  const passwordRule = 'A password is 8 to 256 characters'
  const invalid: Array<[string, unknown, string]> = [
    ['a short name', { username: 'ab', password: 'password123' }, nameRule],
    ['a long name', { username: 'a'.repeat(33), password: 'password123' }, nameRule],
    ['a name with a space', { username: 'a b c', password: 'password123' }, nameRule],
    ['a name with markup', { username: '<b>x</b>', password: 'password123' }, nameRule],
    ['a short password', { username: uniqueName(), password: 'short' }, passwordRule],
    ['a long password', { username: uniqueName(), password: 'p'.repeat(257) }, passwordRule],
    // Characters are code points: four emoji are four characters (eight UTF-16 units).
    ['a password of four emoji', { username: uniqueName(), password: '🌲'.repeat(4) }, passwordRule],
    ['a missing password', { username: uniqueName() }, 'A password is 8 to 256 characters'],
    ['an object for a name', { username: { name: 'abcdef' }, password: 'password123' }, nameRule],
    ['no body', undefined, 'Send {"username","password"} as JSON']
  ]
  for (const [what, payload, message] of invalid) {
    await t.test(`register refuses ${what} with 400`, async (t) => {
      const response = await post('/api/register', payload)
      t.equal(response.statusCode, 400)
      t.same(response.json(), { error: 'bad_request', message })
    })
  }

  await t.test('register accepts the edges of the rules', async (t) => {
    t.equal((await post('/api/register', { username: `a.${process.pid}`.slice(0, 32), password: '12345678' })).statusCode, 201)
    const longest = ('Z_-.' + uniqueName()).padEnd(32, 'x')
    t.equal((await post('/api/register', { username: longest, password: 'p'.repeat(256) })).statusCode, 201)
    t.equal((await post('/api/register', { username: uniqueName(), password: '🌲'.repeat(256) })).statusCode, 201, '256 emoji')
  })

  await t.test('login matches the name case-insensitively and shows it as registered', async (t) => {
    const username = uniqueName('MixedCase')
    await register(app, username, 'password123')
    const response = await post('/api/login', { username: username.toUpperCase(), password: 'password123' })
    t.equal(response.statusCode, 200)
    t.equal(response.json().user.name, username)
    const me = await app.inject({ url: '/api/me', headers: { cookie: sessionCookie(response) } })
    t.equal(me.json().user.name, username)
  })

  await t.test('login gives the same 401 for an unknown name and a wrong password', async (t) => {
    const username = uniqueName()
    await register(app, username, 'password123')
    const wrong = await post('/api/login', { username, password: 'password124' })
    const unknown = await post('/api/login', { username: uniqueName('nobody'), password: 'password123' })
    t.equal(wrong.statusCode, 401)
    t.equal(unknown.statusCode, 401)
    t.same(wrong.json(), unknown.json())
    t.notOk(wrong.cookies.some((c) => c.name === 'canopy.sid'), 'no session for a failed login')
  })

  await t.test('login gives a new session id and a new ticket', async (t) => {
    const username = uniqueName()
    const first = await register(app, username, 'password123')
    const ticket1 = (await app.inject({ url: '/api/me', headers: { cookie: first.cookie } })).json().wsTicket
    const second = await post('/api/login', { username, password: 'password123' }, first.cookie)
    t.not(sessionCookie(second), first.cookie)
    const ticket2 = (await app.inject({ url: '/api/me', headers: { cookie: sessionCookie(second) } })).json().wsTicket
    t.not(ticket2, ticket1)
  })

  await t.test('me without a session, or with a forged cookie, is 401', async (t) => {
    const none = await app.inject({ url: '/api/me' })
    t.equal(none.statusCode, 401)
    t.match(none.json(), { error: 'unauthorized', message: String })
    const forged = await app.inject({ url: '/api/me', headers: { cookie: 'canopy.sid=abc.def' } })
    t.equal(forged.statusCode, 401)
  })

  await t.test('logout destroys the session', async (t) => {
    const { cookie } = await register(app)
    const out = await post('/api/logout', {}, cookie)
    t.equal(out.statusCode, 204)
    t.equal((await app.inject({ url: '/api/me', headers: { cookie } })).statusCode, 401, 'the old cookie is worth nothing')
    t.equal((await post('/api/logout', {})).statusCode, 204, 'logging out without a session is harmless')
    t.equal((await post('/api/logout', { everywhere: true })).statusCode, 204, 'and so is logging out everywhere')
  })

  await t.test('logout refuses a body it cannot read, and logs nobody out', async (t) => {
    const { cookie } = await register(app)
    for (const payload of [{ everywhere: 'yes' }, { all: true }, []]) {
      const response = await post('/api/logout', payload, cookie)
      t.equal(response.statusCode, 400, JSON.stringify(payload))
      t.same(response.json(), { error: 'bad_request', message: 'Send no body, {} or {"everywhere":true}' })
    }
    t.equal((await app.inject({ url: '/api/me', headers: { cookie } })).statusCode, 200, 'still logged in')
  })

  await t.test('logout from a client that says application/json and sends no body', async (t) => {
    const { cookie } = await register(app)
    const out = await app.inject({ method: 'POST', url: '/api/logout', headers: { cookie, 'content-type': 'application/json' } })
    t.equal(out.statusCode, 204)
    t.equal((await app.inject({ url: '/api/me', headers: { cookie } })).statusCode, 401, 'logged out')
    const login = await app.inject({ method: 'POST', url: '/api/login', headers: { 'content-type': 'application/json' } })
    t.equal(login.statusCode, 400, 'a route that needs a body still says so')
    t.match(login.json(), { error: 'bad_request', message: String })
  })
})

/** Checks a 429 as SPEC says: Retry-After in whole seconds, the same wait in ms in the body. */
function assertLimited (t: Test, response: LightMyRequestResponse, windowMs: number, what: string): void {
  t.equal(response.statusCode, 429, what)
  const body = response.json<{ error: string, message: string, retryAfterMs: number }>()
  t.match(body, { error: 'too_many_requests', message: String, retryAfterMs: Number })
  t.ok(body.retryAfterMs > 0 && body.retryAfterMs <= windowMs, `retryAfterMs ${body.retryAfterMs} is within the window`)
  t.equal(response.headers['retry-after'], String(Math.ceil(body.retryAfterMs / 1000)), 'Retry-After is the same wait in seconds')
}

const minuteMs = 60_000
const hourMs = 60 * minuteMs

const login = async (app: FastifyInstance, username: string, password: string, remoteAddress = '127.0.0.1') =>
  await app.inject({ method: 'POST', url: '/api/login', payload: { username, password }, remoteAddress })
const registration = async (app: FastifyInstance, remoteAddress = '127.0.0.1', username = uniqueName()) =>
  await app.inject({ method: 'POST', url: '/api/register', payload: { username, password: 'password123' }, remoteAddress })

t.test('login attempts are limited per client address and name', async (t) => {
  const app = await buildTestApp(t, { LOGIN_ATTEMPTS: '3' })
  const username = uniqueName()
  await register(app, username, 'password123')
  for (let i = 0; i < 3; i++) t.equal((await login(app, username, 'wrong-password')).statusCode, 401)
  assertLimited(t, await login(app, username, 'password123'), minuteMs, 'even the right password waits')
  t.equal((await login(app, username.toUpperCase(), 'password123')).statusCode, 429, 'the name is counted without regard to case')
  t.equal((await login(app, username, 'password123', '10.0.0.2')).statusCode, 200, 'another address is not limited')
  t.equal((await login(app, uniqueName(), 'password123')).statusCode, 401, 'another name is not limited')
})

t.test('one address gets at most 10 × LOGIN_ATTEMPTS login attempts over all names', async (t) => {
  const app = await buildTestApp(t, { LOGIN_ATTEMPTS: '2' })
  for (let i = 0; i < 20; i++) t.equal((await login(app, uniqueName('nobody'), 'password123', '10.0.0.3')).statusCode, 401, `name ${i + 1}`)
  assertLimited(t, await login(app, uniqueName('nobody'), 'password123', '10.0.0.3'), minuteMs, 'the 21st name')
  t.equal((await login(app, uniqueName('nobody'), 'password123', '10.0.0.4')).statusCode, 401, 'another address is not limited')
})

t.test('registrations are limited per client address', async (t) => {
  const app = await buildTestApp(t, { REGISTER_ATTEMPTS: '3' })
  for (let i = 0; i < 3; i++) t.equal((await registration(app, '10.0.0.5')).statusCode, 201, `registration ${i + 1}`)
  const limited = await registration(app, '10.0.0.5')
  assertLimited(t, limited, hourMs, 'the 4th registration')
  t.notOk(limited.cookies.some((c) => c.name === 'canopy.sid'), 'no session')
  t.equal((await registration(app, '10.0.0.6')).statusCode, 201, 'another address is not limited')
  const invalid = await app.inject({ method: 'POST', url: '/api/register', payload: { username: 'ab', password: 'password123' }, remoteAddress: '10.0.0.7' })
  t.equal(invalid.statusCode, 400)
  for (let i = 0; i < 3; i++) t.equal((await registration(app, '10.0.0.7')).statusCode, 201, 'a body refused with 400 was not counted')
})

t.test('the limits are shared by every instance on one Postgres', async (t) => {
  const postgres = await startPostgres(t)
  const env = { DATABASE_URL: postgres.url, LOGIN_ATTEMPTS: '2', REGISTER_ATTEMPTS: '2' }
  const [a, b] = [await buildTestApp(t, env), await buildTestApp(t, env)]

  await t.test('registrations', async (t) => {
    t.equal((await registration(a, '10.1.0.1')).statusCode, 201)
    t.equal((await registration(b, '10.1.0.1')).statusCode, 201)
    assertLimited(t, await registration(a, '10.1.0.1'), hourMs, 'a third on the first instance')
    assertLimited(t, await registration(b, '10.1.0.1'), hourMs, 'and on the second')
  })

  await t.test('login per address and name', async (t) => {
    const username = uniqueName()
    t.equal((await login(a, username, 'password123', '10.1.0.2')).statusCode, 401)
    t.equal((await login(b, username, 'password123', '10.1.0.2')).statusCode, 401)
    assertLimited(t, await login(a, username, 'password123', '10.1.0.2'), minuteMs, 'a third on the first instance')
    assertLimited(t, await login(b, username, 'password123', '10.1.0.2'), minuteMs, 'and on the second')
  })

  await t.test('login per address over all names', async (t) => {
    for (let i = 0; i < 20; i++) t.equal((await login(i % 2 === 0 ? a : b, uniqueName('nobody'), 'password123', '10.1.0.3')).statusCode, 401)
    assertLimited(t, await login(a, uniqueName('nobody'), 'password123', '10.1.0.3'), minuteMs, 'the 21st name on the first instance')
    assertLimited(t, await login(b, uniqueName('nobody'), 'password123', '10.1.0.3'), minuteMs, 'and on the second')
  })
})

t.test('in production, a login or register over plain HTTP is refused in words: 403 insecure_transport', async (t) => {
  const app = await buildTestApp(t, { NODE_ENV: 'production', SESSION_SECRET: 'a-production-secret-of-enough-length', TRUST_PROXY: 'true' })
  for (const url of ['/api/register', '/api/login']) {
    const response = await app.inject({ method: 'POST', url, payload: { username: uniqueName(), password: 'password123' } })
    t.equal(response.statusCode, 403, url)
    t.match(response.json(), { error: 'insecure_transport', message: /HTTPS.*TRUST_PROXY/ })
    t.equal(response.headers['set-cookie'], undefined, 'and no cookie')
  }
  const development = await buildTestApp(t)
  t.equal((await development.inject({ method: 'POST', url: '/api/register', payload: { username: uniqueName(), password: 'password123' } })).statusCode, 201, 'plain HTTP is fine outside production')
})

t.test('in production the cookie is __Host-canopy.sid: Secure, Path=/, no Domain; logout clears it so', async (t) => {
  const app = await buildTestApp(t, { NODE_ENV: 'production', SESSION_SECRET: 'a-production-secret-of-enough-length', TRUST_PROXY: 'true' })
  const https = { 'x-forwarded-proto': 'https' }
  const response = await app.inject({ method: 'POST', url: '/api/register', headers: https, payload: { username: uniqueName(), password: 'password123' } })
  t.equal(response.statusCode, 201)
  t.same(response.cookies.map((c) => c.name), ['__Host-canopy.sid'])
  t.match(response.cookies[0], { secure: true, path: '/', httpOnly: true, sameSite: 'Lax', domain: undefined })
  const cookie = `__Host-canopy.sid=${response.cookies[0]?.value ?? ''}`
  t.equal((await app.inject({ url: '/api/me', headers: { ...https, cookie } })).statusCode, 200)
  const out = await app.inject({ method: 'POST', url: '/api/logout', headers: { ...https, cookie } })
  t.equal(out.statusCode, 204)
  t.match(out.cookies, [{ name: '__Host-canopy.sid', value: '', secure: true, path: '/' }], 'cleared with the attributes a browser needs to accept it')
})
