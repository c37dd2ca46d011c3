import { once } from 'node:events'
import { request, type IncomingMessage } from 'node:http'
import t from 'tap'
import { buildTestApp, register } from '../helpers/app.js'
import { ticketFor } from '../helpers/chat.js'

t.test('HTTP basics', async (t) => {
  const app = await buildTestApp(t)

  await t.test('the page is served with a CSP that allows no inline script', async (t) => {
    const response = await app.inject({ url: '/' })
    t.equal(response.statusCode, 200)
    t.match(response.headers['content-type'], /text\/html/)
    const csp = String(response.headers['content-security-policy'])
    t.match(csp, /script-src 'self'/)
    t.notMatch(csp, /unsafe-inline/)
    t.equal(response.headers['x-content-type-options'], 'nosniff')
  })

  await t.test('a WebSocket upgrade refused before it opens is an HTTP response with the same security headers', async (t) => {
    await app.listen({ port: 0, host: '127.0.0.1' })
    const address = app.server.address()
    if (address === null || typeof address === 'string') return t.fail('not listening on a port')
    const upgrade = request({
      host: '127.0.0.1',
      port: address.port,
      path: '/chat?ticket=x',
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' }
    })
    upgrade.end()
    const [response] = await once(upgrade, 'response') as [IncomingMessage]
    response.resume()
    t.equal(response.statusCode, 401, 'no session')
    t.match(String(response.headers['content-security-policy']), /default-src 'self'/)
    t.equal(response.headers['x-content-type-options'], 'nosniff')
  })

  await t.test('GET /chat without an upgrade, from a session showing its ticket: 426 in JSON, saying how', async (t) => {
    const { cookie } = await register(app)
    const ticket = await ticketFor(app, cookie)
    const response = await app.inject({ url: `/chat?ticket=${ticket}`, headers: { cookie } })
    t.equal(response.statusCode, 426)
    t.equal(response.headers.upgrade, 'websocket')
    t.match(response.json(), { error: 'upgrade_required', message: /WebSocket/ })
    t.equal(response.headers['x-content-type-options'], 'nosniff')
    t.equal((await app.inject({ url: '/chat' })).statusCode, 401, 'without a session, the refusal of an upgrade')
  })

  await t.test('/healthz and /readyz', async (t) => {
    t.equal((await app.inject({ url: '/healthz' })).statusCode, 200)
    const ready = await app.inject({ url: '/readyz' })
    t.equal(ready.statusCode, 200)
    t.same(ready.json(), { status: 'ready' })
  })

  await t.test('unknown routes are JSON 404s', async (t) => {
    const response = await app.inject({ url: '/api/nothing-here' })
    t.equal(response.statusCode, 404)
    t.match(response.json(), { error: 'not_found', message: String })
  })

  await t.test('malformed JSON is a JSON 400', async (t) => {
    const response = await app.inject({ method: 'POST', url: '/api/login', headers: { 'content-type': 'application/json' }, payload: '{"username":' })
    t.equal(response.statusCode, 400)
    t.match(response.json(), { error: 'bad_request', message: String })
  })

  await t.test('a url that is not valid percent-encoding, or a path part over the limit, is a JSON error like any other', async (t) => {
    const cases: Array<[string, number, string]> = [
      ['/%E0%A4%A', 400, 'bad_request'],
      ['/api/topics/%E0%A4%A/messages', 400, 'bad_request'],
      [`/api/topics/${'a'.repeat(200)}/messages`, 414, 'uri_too_long']
    ]
    for (const [url, status, code] of cases) {
      const response = await app.inject({ url })
      t.equal(response.statusCode, status, url)
      t.same(Object.keys(response.json<Record<string, unknown>>()).sort(), ['error', 'message'], url)
      t.equal(response.json<{ error: string }>().error, code, url)
    }
  })

  await t.test('a login name Postgres could not store is 400, never 500', async (t) => {
    for (const username of ['a\u0000b', 'a\ud800b']) {
      const response = await app.inject({ method: 'POST', url: '/api/login', payload: { username, password: 'whatever1' } })
      t.equal(response.statusCode, 400, JSON.stringify(username))
      t.match(response.json(), { error: 'bad_request', message: String })
    }
  })

  await t.test('a body over the limit is refused with 413', async (t) => {
    const response = await app.inject({ method: 'POST', url: '/api/login', payload: { username: 'x'.repeat(70_000), password: 'y' } })
    t.equal(response.statusCode, 413)
    t.match(response.json(), { error: 'payload_too_large' })
  })

  await t.test('an unsupported content type is refused', async (t) => {
    const response = await app.inject({ method: 'POST', url: '/api/login', headers: { 'content-type': 'text/xml' }, payload: '<x/>' })
    t.equal(response.statusCode, 415)
    t.match(response.json(), { error: 'unsupported_media_type' })
  })
})

t.test('a state-changing request from another site is refused with 403 before it does anything', async (t) => {
  const app = await buildTestApp(t, { ALLOWED_ORIGINS: 'https://partner.example' })
  const { cookie } = await register(app)
  const loggedIn = async (): Promise<boolean> => (await app.inject({ url: '/api/me', headers: { cookie } })).statusCode === 200
  /** The logout a page on any site can send without a preflight: text/plain, no body. */
  const logout = async (headers: Record<string, string>) =>
    await app.inject({ method: 'POST', url: '/api/logout', headers: { cookie, 'content-type': 'text/plain', ...headers } })

  await t.test('an Origin that is neither the server\'s own nor allowed', async (t) => {
    for (const origin of ['https://evil.example', 'http://sub.localhost', 'http://localhost:8080', 'null']) {
      const response = await logout({ origin })
      t.equal(response.statusCode, 403, origin)
      t.match(response.json(), { error: 'forbidden', message: /not allowed/ })
    }
    const read = await app.inject({ method: 'PUT', url: '/api/topics/general/read', headers: { cookie, origin: 'https://evil.example' }, payload: { id: 1 } })
    t.equal(read.statusCode, 403, 'PUT too')
    t.ok(await loggedIn(), 'nobody was logged out')
  })

  await t.test('no Origin, and Sec-Fetch-Site saying another site', async (t) => {
    for (const site of ['cross-site', 'same-site']) t.equal((await logout({ 'sec-fetch-site': site })).statusCode, 403, site)
    t.ok(await loggedIn(), 'nobody was logged out')
  })

  await t.test('GET is never refused for its Origin', async (t) => {
    t.equal((await app.inject({ url: '/api/me', headers: { cookie, origin: 'https://evil.example' } })).statusCode, 200)
  })

  await t.test('the server\'s own origin, an allowed one, and a program that sends no Origin pass', async (t) => {
    const passes = async (headers: Record<string, string>): Promise<void> => {
      const response = await app.inject({ method: 'POST', url: '/api/login', headers, payload: { username: 'nobody-here', password: 'password123' } })
      t.equal(response.statusCode, 401, JSON.stringify(headers))
    }
    await passes({ origin: 'http://localhost' })
    await passes({ origin: 'http://localhost:80', 'sec-fetch-site': 'same-origin' })
    await passes({ origin: 'https://partner.example', 'sec-fetch-site': 'cross-site' })
    await passes({})
    await passes({ 'sec-fetch-site': 'same-origin' })
    await passes({ 'sec-fetch-site': 'none' })
    const own = await app.inject({ method: 'POST', url: '/api/logout', headers: { cookie, origin: 'http://localhost' } })
    t.equal(own.statusCode, 204)
    t.notOk(await loggedIn(), 'the page\'s own logout works')
  })
})

t.test('a 5xx shows no details and no stack', async (t) => {
  const app = await buildTestApp(t)
  await app.db.close()
  const response = await app.inject({ method: 'POST', url: '/api/login', payload: { username: 'someone', password: 'password123' } })
  t.equal(response.statusCode, 500)
  t.same(response.json(), { error: 'internal', message: 'Internal server error' })
  t.equal((await app.inject({ url: '/readyz' })).statusCode, 503, 'not ready without the database')
})
