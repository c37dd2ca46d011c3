import t from 'tap'
import { migratedDataDir, uniqueName } from '../helpers/app.js'
import { sessionCookie } from '../helpers/http.js'
import { ServerProcess, type LogLine } from '../helpers/server-process.js'

t.test('register, login, a failed or limited attempt and logout are info lines and counts of canopy_auth_total', async (t) => {
  const server = new ServerProcess(t, { METRICS_PORT: '0', LOGIN_ATTEMPTS: '1', DATA_DIR: await migratedDataDir(t) })
  const baseUrl = await server.listening()
  const metricsPattern = /http:\/\/127\.0\.0\.1:\d+\/metrics/
  const metricsUrl = metricsPattern.exec((await server.waitFor((line) => metricsPattern.test(line.raw))).raw)?.[0] ?? ''

  const password = `secret password ${process.pid}`
  const post = async (path: string, body?: unknown, cookie?: string): Promise<Response> => await fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(cookie === undefined ? {} : { cookie }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const [alice, bob] = [uniqueName('alice'), uniqueName('bob')]
  t.equal((await post('/api/register', { username: alice, password })).status, 201)
  t.equal((await post('/api/register', { username: bob, password })).status, 201)
  t.equal((await post('/api/login', { username: alice, password: 'wrong password' })).status, 401)
  t.equal((await post('/api/login', { username: alice, password })).status, 429, 'LOGIN_ATTEMPTS is 1')
  const login = await post('/api/login', { username: bob, password })
  t.equal(login.status, 200)
  const cookie = sessionCookie(login)
  t.equal((await post('/api/logout', { everywhere: true }, cookie)).status, 204)

  const event = async (auth: string, user: string): Promise<LogLine> => await server.waitFor((line) => line.auth === auth && line.user === user)
  t.match(await event('registered', alice), { msg: 'auth: registered', address: '127.0.0.1' })
  t.match(await event('failed', alice), { msg: 'auth: failed', address: '127.0.0.1' })
  t.match(await event('limited', alice), { msg: 'auth: limited', attempt: 'login', address: '127.0.0.1' })
  t.match(await event('login', bob), { msg: 'auth: login', address: '127.0.0.1' })
  t.match(await event('logout', bob), { msg: 'auth: logout', everywhere: true, address: '127.0.0.1' })
  const secrets = [password, decodeURIComponent(cookie.split('=')[1] ?? '')]
  t.same(server.lines.filter((line) => secrets.some((secret) => line.raw.includes(secret))).map((line) => line.raw), [], 'no line holds the password or the cookie')

  const metrics = await (await fetch(metricsUrl)).text()
  const counts = Object.fromEntries([...metrics.matchAll(/^canopy_auth_total\{outcome="(\w+)"\} (\d+)$/gm)].map(([, outcome, count]) => [outcome, Number(count)]))
  t.same(counts, { registered: 2, login: 1, failed: 1, limited: 1, logout: 1 })
})
