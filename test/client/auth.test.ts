import t from 'tap'
import { chatUrl, credentials, sessionLogin, TokenRefresh, tokenExpiresAtMs, Unauthorized, type Fetch, type TokenAuth } from '../../client/src/auth.js'

/** How each kind of credentials opens /chat, without a server: URLs, headers, tickets, tokens. */

/** A JWT with this payload (the signature is the server's business, not the client's). */
const jwt = (payload: object): string => ['{"alg":"HS256"}', JSON.stringify(payload)].map((part) => Buffer.from(part).toString('base64url')).join('.') + '.signature'

/** A fetch that answers every request with `status` and `body`, and records what it was asked. */
function fakeFetch (status: number, body: unknown, headers: Record<string, string> = {}): { fetch: Fetch, asked: Array<{ url: string, init?: Parameters<Fetch>[1] }> } {
  const asked: Array<{ url: string, init?: Parameters<Fetch>[1] }> = []
  const fetch: Fetch = async (url, init) => {
    asked.push({ url, init })
    return { status, ok: status >= 200 && status < 300, json: async () => body, headers: new Headers(headers) }
  }
  return { fetch, asked }
}

t.test('chatUrl: ws or wss after the server\'s scheme, with the query', async (t) => {
  t.equal(chatUrl('http://127.0.0.1:8800', { ticket: 'a b', topic: 'general' }), 'ws://127.0.0.1:8800/chat?ticket=a+b&topic=general')
  t.equal(chatUrl('https://chat.example.com/some/page', { token: 't' }), 'wss://chat.example.com/chat?token=t')
  t.equal(chatUrl('wss://chat.example.com', {}), 'wss://chat.example.com/chat')
})

t.test('a session: a fresh ticket from GET /api/me, with its cookie; a 401 there means the session is gone', async (t) => {
  const server = fakeFetch(200, { user: { id: 1, name: 'a' }, wsTicket: 'ticket-1' })
  t.same(await credentials({ kind: 'session', cookie: 'canopy.sid=s' }, { url: 'wss://chat.example.com', fetch: server.fetch }),
    { query: { ticket: 'ticket-1' }, headers: { cookie: 'canopy.sid=s' } })
  t.equal(server.asked[0]?.url, 'https://chat.example.com/api/me')
  t.match(server.asked[0]?.init, { credentials: 'include', headers: { cookie: 'canopy.sid=s' } })

  const browserSession = await credentials({ kind: 'session' }, { url: 'http://h', fetch: server.fetch })
  t.same(browserSession, { query: { ticket: 'ticket-1' }, headers: undefined }, 'the browser sends its own cookie')
  t.same(await credentials({ kind: 'session', ticket: async () => 'mine' }, { url: 'http://h', fetch: server.fetch }), { query: { ticket: 'mine' }, headers: undefined })

  await t.rejects(credentials({ kind: 'session' }, { url: 'http://h', fetch: fakeFetch(401, {}).fetch }), Unauthorized)
  await t.rejects(credentials({ kind: 'session' }, { url: 'http://h', fetch: fakeFetch(503, {}).fetch }), { name: 'Error', message: /503/ }, 'anything else: try again later')
})

t.test('a key goes in the Authorization header; a token in the query, fresh each time', async (t) => {
  const { fetch } = fakeFetch(500, {})
  t.same(await credentials({ kind: 'key', key: 'k1' }, { url: 'http://h', fetch }), { query: {}, headers: { authorization: 'Bearer k1' } })
  let made = 0
  const auth: TokenAuth = { kind: 'token', token: async () => `token-${++made}` }
  t.same(await credentials(auth, { url: 'http://h', fetch }), { query: { token: 'token-1' }, headers: undefined, token: 'token-1' })
  t.match(await credentials(auth, { url: 'http://h', fetch }), { token: 'token-2' })
})

t.test('sessionLogin: POST /api/login, and the session cookie it set', async (t) => {
  const server = fakeFetch(200, { user: { id: 1, name: 'bot' } }, { 'set-cookie': 'canopy.sid=abc; Path=/; HttpOnly; SameSite=Lax' })
  t.same(await sessionLogin('http://h:1', { username: 'bot', password: 'pw' }, { fetch: server.fetch }), { kind: 'session', cookie: 'canopy.sid=abc' })
  t.match(server.asked[0], { url: 'http://h:1/api/login', init: { method: 'POST', body: '{"username":"bot","password":"pw"}' } })
  await t.rejects(sessionLogin('http://h', { username: 'bot', password: 'no' }, { fetch: fakeFetch(401, {}).fetch }), Unauthorized)
})

t.test('a token\'s expiry is read from its exp; anything unreadable has none', async (t) => {
  t.equal(tokenExpiresAtMs(jwt({ sub: 'a', exp: 1_700_000_000 })), 1_700_000_000_000)
  t.equal(tokenExpiresAtMs(jwt({ sub: 'a' })), undefined)
  t.equal(tokenExpiresAtMs('not a token'), undefined)
  t.equal(tokenExpiresAtMs(''), undefined)
})

t.test('a token is replaced in band before it expires, with a fresh one each time', async (t) => {
  const nowMs = 1_000_000_000_000
  let made = 0
  // Each new token expires in a second: well inside the margin, so it is replaced at once.
  const auth: TokenAuth = { kind: 'token', token: async () => jwt({ sub: 'a', n: ++made, exp: nowMs / 1000 + 1 }) }
  const sent: string[] = []
  let twoSent = (): void => {}
  const done = new Promise<void>((resolve) => { twoSent = resolve })
  const refresh = new TokenRefresh(auth, (frame) => {
    t.equal(frame.type, 'auth')
    sent.push(frame.token)
    if (sent.length === 2) {
      refresh.stop()
      twoSent()
    }
  }, () => nowMs)
  refresh.start(jwt({ sub: 'a', exp: nowMs / 1000 + 5 }))
  await done
  t.equal(made, 2)
  t.same(sent.map((token) => tokenExpiresAtMs(token)), [nowMs + 1000, nowMs + 1000])

  const expired = new TokenRefresh(auth, () => { t.fail('an expired token is not refreshed') }, () => nowMs)
  expired.start(jwt({ exp: nowMs / 1000 - 1 }))
  expired.start('unreadable')
  expired.stop()
})
