import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose'
import { WebSocket } from 'ws'
import { buildTestApp, register, tempDir, uniqueName } from '../helpers/app.js'
import { ChatClient } from '../helpers/chat.js'
import { bearer, connectProgram, makeBot } from '../helpers/programs.js'
import { ServerProcess } from '../helpers/server-process.js'
import { ConfigError, loadConfig } from '../../src/config.js'
import { CloseCode } from '../../src/protocol.js'

const secret = 'an application secret of at least 32 characters'
const secretKey = new TextEncoder().encode(secret)
const nowSeconds = (): number => Math.floor(Date.now() / 1000)

/** An HS256 token for `sub`, valid for `seconds`; `claims` replace or add claims. */
async function hsToken (sub: string | undefined, seconds = 600, claims: JWTPayload = {}): Promise<string> {
  const jwt = new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256' })
  if (sub !== undefined) jwt.setSubject(sub)
  if (seconds !== 0) jwt.setExpirationTime(nowSeconds() + seconds)
  return await jwt.sign(secretKey)
}

async function meStatus (app: FastifyInstance, token: string): Promise<{ statusCode: number, name?: string, message?: string }> {
  const response = await app.inject({ url: '/api/me', headers: bearer(token) })
  const body = response.json<{ user?: { name: string }, message?: string }>()
  return { statusCode: response.statusCode, name: body.user?.name, message: body.message }
}

t.test('tokens signed with AUTH_JWT_SECRET (HS256)', async (t) => {
  const app = await buildTestApp(t, { AUTH_JWT_SECRET: secret })
  const owner = await register(app, uniqueName('owner'))

  await t.test('first sight makes the user, of kind token, once; later tokens find it', async (t) => {
    const name = uniqueName('App')
    const first = await meStatus(app, await hsToken(name))
    t.equal(first.statusCode, 200)
    t.equal(first.name, name)
    t.equal((await meStatus(app, await hsToken(name.toLowerCase()))).name, name, 'the same user, whatever the case')
    const rows = await app.db.query<{ kind: string, password_hash: string | null }>('SELECT kind, password_hash FROM users WHERE lower(name) = lower($1)', [name])
    t.same(rows, [{ kind: 'token', password_hash: null }], 'one row, of kind token, without a password')
    const login = await app.inject({ method: 'POST', url: '/api/login', payload: { username: name, password: 'correct horse' } })
    t.equal(login.statusCode, 401, 'no password opens it')
    const published = await app.inject({ method: 'POST', url: '/api/topics/tokens-http/messages', headers: bearer(await hsToken(name)), payload: { text: 'hi' } })
    t.match(published.json(), { message: { author: name, text: 'hi' } })
    t.notOk(published.headers['set-cookie'])

    const names = Array.from({ length: 4 }, () => uniqueName('race'))
    const racing = await Promise.all(names.flatMap((raced) => [0, 1, 2].map(async () => await meStatus(app, await hsToken(raced)))))
    t.ok(racing.every((result) => result.statusCode === 200), 'first sights at once all pass')
  })

  await t.test('refused with 401, over HTTP and before the upgrade', async (t) => {
    const bot = await makeBot(app, owner.cookie)
    const other = new TextEncoder().encode('another secret, also 32 characters or more')
    const badlySigned = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(uniqueName('x')).setExpirationTime(nowSeconds() + 600).sign(other)
    const cases: Array<[string, string, RegExp]> = [
      ['expired', await hsToken(uniqueName('x'), -10), /expired/],
      ['without exp', await hsToken(uniqueName('x'), 0), /no exp/],
      ['badly signed', badlySigned, /signature/],
      ['naming a password account', await hsToken(owner.username), /password account/],
      ['naming a bot', await hsToken(bot.name), /bot/],
      ['whose sub breaks the name rule', await hsToken('no spaces here'), /sub is not a name/],
      ['without sub', await hsToken(undefined), /sub/]
    ]
    for (const [what, token, reason] of cases) {
      const refused = await meStatus(app, token)
      t.equal(refused.statusCode, 401, `a token ${what}: 401`)
      t.match(refused.message, reason, 'saying why')
      await t.rejects(connectProgram(app, { token }), /Unexpected server response: 401/, `a token ${what}: 401 before the upgrade`)
      await t.rejects(connectProgram(app, { bearer: token }), /Unexpected server response: 401/)
    }
    const noAccount = await app.db.query('SELECT 1 FROM users WHERE lower(name) = \'no spaces here\'')
    t.same(noAccount, [], 'a refused token makes no user')
  })

  await t.test('/chat?token= opens; an auth frame keeps the socket past the first exp; without one it closes 4401', async (t) => {
    const name = uniqueName('live')
    const firstExpSeconds = 3
    const refreshed = await connectProgram(app, { token: await hsToken(name, firstExpSeconds) }, { topic: 'tokens-ws' })
    t.match(await refreshed.nextOf('subscribed'), { topic: 'tokens-ws', present: [name] })
    const expiring = await connectProgram(app, { bearer: await hsToken(name, firstExpSeconds) })
    await expiring.nextOf('subscribed')

    refreshed.send({ type: 'auth', token: await hsToken(uniqueName('someone')) })
    t.match(await refreshed.next(), { type: 'error', code: 'bad_request' }, 'another user\'s token is refused, the socket stays')
    refreshed.send({ type: 'auth' })
    t.match(await refreshed.next(), { type: 'error', code: 'bad_request' }, 'an auth frame without a token')
    refreshed.send({ type: 'auth', token: await hsToken(name, 600) })
    // The socket answers a subscribe after it: the auth frame was handled first, in order.
    refreshed.send({ type: 'subscribe', topic: 'tokens-probe' })
    t.match(await refreshed.next(), { type: 'subscribed', topic: 'tokens-probe' }, 'a new token is taken without a word')

    t.equal((await expiring.closed).code, CloseCode.loggedOut, 'the socket whose token expired closes with 4401')
    refreshed.send({ type: 'subscribe', topic: 'tokens-probe-2' })
    t.match(await refreshed.next(), { type: 'subscribed', topic: 'tokens-probe-2' }, 'the refreshed socket lives past the first exp')

    refreshed.send({ type: 'auth', token: await hsToken(name, -10) })
    t.equal((await refreshed.closed).code, CloseCode.loggedOut, 'an expired token in an auth frame closes the socket 4401')
  })

  await t.test('an auth frame on a socket that did not open with a token is an error', async (t) => {
    const bot = await makeBot(app, owner.cookie)
    const socket = await connectProgram(app, { bearer: bot.key })
    await socket.nextOf('subscribed')
    socket.send({ type: 'auth', token: await hsToken(uniqueName('x')) })
    t.match(await socket.next(), { type: 'error', code: 'bad_request' })
    socket.close()
  })

  await t.test('a disabled token user\'s sockets close with 4401, and their tokens are refused', async (t) => {
    const admin = await register(app, uniqueName('admin'))
    await app.db.query('UPDATE users SET admin = true WHERE id = $1', [admin.id])
    const name = uniqueName('gone')
    const socket = await connectProgram(app, { token: await hsToken(name) })
    await socket.nextOf('subscribed')
    t.equal((await app.inject({ method: 'POST', url: `/api/admin/users/${name}/disable`, headers: { cookie: admin.cookie } })).statusCode, 204)
    t.equal((await socket.closed).code, CloseCode.loggedOut)
    t.equal((await meStatus(app, await hsToken(name))).statusCode, 401)
  })
})

t.test('tokens signed with a key of AUTH_JWKS_FILE (RS256, ES256)', async (t) => {
  const rs = await generateKeyPair('RS256')
  const es = await generateKeyPair('ES256')
  const stranger = await generateKeyPair('RS256')
  const file = join(tempDir(t), 'jwks.json')
  writeFileSync(file, JSON.stringify({ keys: [{ ...await exportJWK(rs.publicKey), kid: 'rs', alg: 'RS256' }, { ...await exportJWK(es.publicKey), kid: 'es', alg: 'ES256' }] }))
  const app = await buildTestApp(t, { AUTH_JWKS_FILE: file })
  const sign = async (alg: string, kid: string, key: CryptoKey, sub: string): Promise<string> =>
    await new SignJWT({}).setProtectedHeader({ alg, kid }).setSubject(sub).setExpirationTime(nowSeconds() + 600).sign(key)

  const name = uniqueName('rsa')
  t.equal((await meStatus(app, await sign('RS256', 'rs', rs.privateKey, name))).name, name, 'RS256')
  t.equal((await meStatus(app, await sign('ES256', 'es', es.privateKey, name))).name, name, 'ES256, the same user')
  t.equal((await meStatus(app, await sign('RS256', 'rs', stranger.privateKey, name))).statusCode, 401, 'a key not in the file')
  t.equal((await meStatus(app, await hsToken(name))).statusCode, 401, 'HS256 without AUTH_JWT_SECRET')
  const socket = await connectProgram(app, { token: await sign('ES256', 'es', es.privateKey, name) })
  t.match(await socket.nextOf('subscribed'), { present: [name] })
  socket.close()
})

t.test('no token is admitted without AUTH_JWT_SECRET or AUTH_JWKS_FILE; a bad setting stops start-up with one line', async (t) => {
  const app = await buildTestApp(t)
  const refused = await meStatus(app, await hsToken(uniqueName('x')))
  t.equal(refused.statusCode, 401)
  t.match(refused.message, /admits no tokens/)

  const dir = tempDir(t)
  const notJson = join(dir, 'bad.json')
  writeFileSync(notJson, '{ not json')
  const noKeys = join(dir, 'empty.json')
  writeFileSync(noKeys, '{"keys":[]}')
  t.throws(() => loadConfig({ DATA_DIR: dir, AUTH_JWKS_FILE: notJson }), new ConfigError(`Invalid configuration: AUTH_JWKS_FILE ${notJson} is not JSON`))
  t.throws(() => loadConfig({ DATA_DIR: dir, AUTH_JWKS_FILE: noKeys }), /AUTH_JWKS_FILE .* is not a JWKS/)
  t.throws(() => loadConfig({ DATA_DIR: dir, AUTH_JWKS_FILE: join(dir, 'missing.json') }), /AUTH_JWKS_FILE .* cannot be read \(ENOENT\)/)
  t.throws(() => loadConfig({ DATA_DIR: dir, AUTH_JWT_SECRET: 'short' }), /AUTH_JWT_SECRET/)
})

t.test('the token is never logged: not from the /chat query, the Authorization header or an auth frame', async (t) => {
  const server = new ServerProcess(t, { AUTH_JWT_SECRET: secret, LOG_LEVEL: 'debug' })
  const baseUrl = await server.listening()
  const name = uniqueName('logged')
  const tokens = [await hsToken(name), await hsToken(name), await hsToken(name, -10), await hsToken(name, 600, { n: 4 })]
  const [query = '', header = '', expired = '', framed = ''] = tokens
  t.equal((await fetch(`${baseUrl}/api/me`, { headers: bearer(header) })).status, 200)
  t.equal((await fetch(`${baseUrl}/api/me`, { headers: bearer(expired) })).status, 401)
  const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/chat?token=${query}&topic=logged`)
  const client = new ChatClient(socket)
  await client.nextOf('subscribed')
  client.send({ type: 'auth', token: framed })
  client.send({ type: 'auth', token: expired })
  t.equal((await client.closed).code, CloseCode.loggedOut)
  const refused = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/chat?token=${expired}`)
  await new Promise<void>((resolve) => { refused.once('error', () => { resolve() }) })

  // A marker request, logged after everything before it.
  t.equal((await fetch(`${baseUrl}/api/token-log-marker`)).status, 404)
  await server.waitForIndex((line) => line.req?.url === '/api/token-log-marker')
  t.ok(server.lines.some((line) => line.req?.url === '/chat?token=[redacted]&topic=logged'), 'the /chat upgrade is logged, its token redacted')
  for (const token of tokens) {
    const signature = token.split('.')[2] ?? token
    t.same(server.lines.filter((line) => line.raw.includes(signature)).map((line) => line.raw), [], 'no line holds the token')
  }
})
