import { randomBytes } from 'node:crypto'
import t from 'tap'
import { buildTestApp, register } from '../helpers/app.js'
import { listen, sessionCookie } from '../helpers/http.js'
import { connect, connectTcp, ticketFor, type ChatClient } from '../helpers/chat.js'
import { CloseCode } from '../../src/protocol.js'

t.test('every bad frame gets its error code and the connection keeps working', async (t) => {
  const app = await buildTestApp(t, { MAX_MESSAGE_CHARS: '10' })
  const { cookie } = await register(app)
  const client = await connect(app, cookie, { topic: 'errors' })
  await client.nextOf('subscribed')
  const cases: Array<[string, unknown, string, string?]> = [
    ['not JSON', '{"type":', 'bad_json'],
    ['a JSON string', '"publish"', 'bad_request'],
    ['a JSON array', '[1,2]', 'bad_request'],
    ['null', 'null', 'bad_request'],
    ['no type', { topic: 'errors' }, 'bad_request'],
    ['an unknown type', { type: 'shout', topic: 'errors' }, 'unknown_type'],
    ['an unknown type with a ref', { type: 'shout', ref: 'r-unknown' }, 'unknown_type', 'r-unknown'],
    ['subscribe without a topic', { type: 'subscribe' }, 'bad_request'],
    ['subscribe to a bad topic', { type: 'subscribe', topic: 'UPPER' }, 'bad_topic'],
    ['a topic of 65 characters', { type: 'subscribe', topic: 'a'.repeat(65) }, 'bad_topic'],
    ['a negative since', { type: 'subscribe', topic: 'errors', since: -1 }, 'bad_request'],
    ['a fractional since', { type: 'subscribe', topic: 'errors', since: 1.5 }, 'bad_request'],
    ['a string since', { type: 'subscribe', topic: 'errors', since: '3' }, 'bad_request'],
    ['unsubscribe from a bad topic', { type: 'unsubscribe', topic: '-x' }, 'bad_topic'],
    ['publish without a ref', { type: 'publish', topic: 'errors', text: 'hi' }, 'bad_request'],
    ['publish with an empty ref', { type: 'publish', topic: 'errors', text: 'hi', ref: '' }, 'bad_request'],
    ['publish with a ref of 65 characters', { type: 'publish', topic: 'errors', text: 'hi', ref: 'r'.repeat(65) }, 'bad_request'],
    ['publish without text', { type: 'publish', topic: 'errors', ref: 'r1' }, 'bad_request', 'r1'],
    ['publish with a number for text', { type: 'publish', topic: 'errors', text: 5, ref: 'r2' }, 'bad_request', 'r2'],
    ['publish to a bad topic', { type: 'publish', topic: 'Bad Topic', text: 'hi', ref: 'r3' }, 'bad_topic', 'r3'],
    ['publish without a topic', { type: 'publish', text: 'hi', ref: 'r4' }, 'bad_request', 'r4'],
    ['empty text', { type: 'publish', topic: 'errors', text: '', ref: 'r5' }, 'too_long', 'r5'],
    ['blank text', { type: 'publish', topic: 'errors', text: ' \n\t ', ref: 'r6' }, 'too_long', 'r6'],
    ['text over MAX_MESSAGE_CHARS', { type: 'publish', topic: 'errors', text: 'x'.repeat(11), ref: 'r7' }, 'too_long', 'r7'],
    ['text with a NUL', { type: 'publish', topic: 'errors', text: 'a\u0000b', ref: 'r8' }, 'bad_request', 'r8'],
    ['text with half a surrogate pair', '{"type":"publish","topic":"errors","text":"a\\ud800b","ref":"r9"}', 'bad_request', 'r9']
  ]
  for (const [what, frame, code, ref] of cases) {
    client.send(frame)
    const error = await client.next()
    t.same(error, ref === undefined
      ? { type: 'error', code, message: (error as { message: string }).message }
      : { type: 'error', code, message: (error as { message: string }).message, ref }, what)
  }
  client.send({ type: 'publish', topic: 'errors', text: '😀'.repeat(10), ref: 'ok' })
  t.match(await client.next(), { type: 'ack', ref: 'ok' }, '10 code points are 10 characters, not 20 UTF-16 units')
  t.same(await app.db.query('SELECT text FROM messages'), [{ text: '😀'.repeat(10) }], 'only the good one was stored')
})

t.test('close codes for frames the protocol does not allow', async (t) => {
  const app = await buildTestApp(t)
  const { cookie } = await register(app)

  await t.test('a binary frame: 1003', async (t) => {
    const client = await connect(app, cookie)
    await client.nextOf('subscribed')
    client.socket.send(Buffer.from([1, 2, 3]), { binary: true })
    t.equal((await client.closed).code, CloseCode.binaryFrame)
  })

  await t.test('a frame over 64 KiB: 1009', async (t) => {
    const client = await connect(app, cookie)
    await client.nextOf('subscribed')
    client.send(JSON.stringify({ type: 'publish', topic: 'general', ref: 'big', text: 'x'.repeat(64 * 1024) }))
    t.equal((await client.closed).code, CloseCode.frameTooLarge)
  })

  await t.test('a text frame that is not UTF-8: 1007', async (t) => {
    const client = await connect(app, cookie)
    await client.nextOf('subscribed')
    client.socket.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false })
    t.equal((await client.closed).code, CloseCode.invalidUtf8)
  })

  t.equal(await app.db.query('SELECT 1 FROM messages').then((rows) => rows.length), 0, 'nothing stored')
})

t.test('publish rate limiting, then 1008 under sustained abuse', async (t) => {
  const app = await buildTestApp(t, { PUBLISH_RATE: '0.001', PUBLISH_BURST: '3' })
  const { cookie } = await register(app)
  const client = await connect(app, cookie, { topic: 'rate' })
  const other = await connect(app, cookie, { topic: 'rate' })
  await client.nextOf('subscribed')
  await other.nextOf('subscribed')
  for (let i = 0; i < 3; i++) {
    client.send({ type: 'publish', topic: 'rate', text: `m${i}`, ref: `r${i}` })
    t.match(await client.nextOf('ack'), { ref: `r${i}` })
  }
  client.send({ type: 'publish', topic: 'rate', text: 'one too many', ref: 'r3' })
  const refusal = await client.nextOf('error')
  t.match(refusal, { code: 'rate_limited', ref: 'r3' })
  t.ok(refusal.retryAfterMs !== undefined && refusal.retryAfterMs > 900_000, `with the wait until a token is back: ${refusal.retryAfterMs} ms`)
  other.send({ type: 'publish', topic: 'rate', text: 'from the same user elsewhere', ref: 'o1' })
  t.match(await other.nextOf('error'), { code: 'rate_limited', ref: 'o1' }, 'the limit is per user, across connections')
  const http = await app.inject({ method: 'POST', url: '/api/topics/rate/messages', headers: { cookie }, payload: { text: 'http', ref: 'h1' } })
  t.equal(http.statusCode, 429, 'and across HTTP')
  t.match(http.json(), { error: 'rate_limited', retryAfterMs: Number })
  t.match(http.headers['retry-after'], /^\d+$/, 'with Retry-After in seconds')

  // Keep on without waiting: the connection is closed.
  for (let i = 4; i < 200; i++) client.send({ type: 'publish', topic: 'rate', text: 'spam', ref: `r${i}` })
  t.same(await client.closed, { code: CloseCode.policy, reason: 'kept sending without pausing after rate limiting' })
  t.same(await app.db.query('SELECT text FROM messages ORDER BY id'), [{ text: 'm0' }, { text: 'm1' }, { text: 'm2' }], 'nothing over the limit was stored')
  other.send({ type: 'subscribe', topic: 'still-here' })
  t.match(await other.nextOf('subscribed'), { topic: 'still-here' }, 'the other connection is unaffected')
})

t.test('history reads have a per-user budget: subscribes on every connection and HTTP pages share it', async (t) => {
  const app = await buildTestApp(t)
  const { cookie } = await register(app)
  const [first, second] = [await connect(app, cookie, { topic: 'budget' }), await connect(app, cookie, { topic: 'budget' })]
  await first.nextOf('subscribed')
  await second.nextOf('subscribed')
  // Reads far faster than the budget refills (20/s): the burst of 100 runs out, shared by
  // HTTP and both connections.
  let reads = 2
  let http
  do {
    http = await app.inject({ url: '/api/topics/budget/messages', headers: { cookie } })
    reads++
  } while (http.statusCode === 200 && reads < 1000)
  t.equal(http.statusCode, 429, `over HTTP: 429 after ${reads} reads`)
  t.match(http.json(), { error: 'rate_limited', retryAfterMs: Number })
  t.match(http.headers['retry-after'], /^\d+$/)
  let refusal
  for (let i = 0; refusal === undefined && i < 1000; i++) {
    const connection = i % 2 === 0 ? first : second
    connection.send({ type: 'subscribe', topic: `budget-${i}` })
    const frame = await connection.next()
    if (frame.type === 'error') refusal = { frame, topic: `budget-${i}` }
  }
  t.match(refusal?.frame, { code: 'rate_limited', topic: refusal?.topic }, 'a subscribe over the budget is refused, naming its topic')
  t.ok((refusal?.frame.type === 'error' ? refusal.frame.retryAfterMs ?? 0 : 0) > 0, 'with the wait')
  const other = await register(app)
  t.equal((await app.inject({ url: '/api/topics/budget/messages', headers: { cookie: other.cookie } })).statusCode, 200, 'another user is not held back')
})

t.test('logout closes that session\'s sockets with 4401, and only those', async (t) => {
  const app = await buildTestApp(t)
  const url = await listen(app)
  const first = await register(app)
  const second = await register(app)
  const ticket = await ticketFor(app, first.cookie)
  const a1 = await connectTcp(url, first.cookie, ticket)
  const a2 = await connectTcp(url, first.cookie, ticket, { topic: 'elsewhere' })
  const b = await connectTcp(url, second.cookie, await ticketFor(app, second.cookie))
  await Promise.all([a1.nextOf('subscribed'), a2.nextOf('subscribed'), b.nextOf('subscribed')])
  t.equal((await app.inject({ method: 'POST', url: '/api/logout', headers: { cookie: first.cookie } })).statusCode, 204)
  t.equal((await a1.closed).code, CloseCode.loggedOut)
  t.equal((await a2.closed).code, CloseCode.loggedOut)
  t.same(await b.nextOf('left'), { type: 'left', topic: 'general', user: first.username })
  b.send({ type: 'subscribe', topic: 'general' })
  t.match(await b.nextOf('subscribed'), { topic: 'general' }, 'the other session stays open')
})

t.test('a session that ends by any path closes its sockets with 4401; other sessions of the same user stay', async (t) => {
  const app = await buildTestApp(t)
  const url = await listen(app)
  const { cookie, username, id } = await register(app)
  const login = async (withCookie?: string): Promise<string> => {
    const response = await app.inject({ method: 'POST', url: '/api/login', headers: withCookie === undefined ? {} : { cookie: withCookie }, payload: { username, password: 'correct horse' } })
    if (response.statusCode !== 200) throw new Error(`login: ${response.statusCode}`)
    return sessionCookie(response)
  }
  const open = async (sessionCookieValue: string): Promise<ChatClient> => {
    const client = await connectTcp(url, sessionCookieValue, await ticketFor(app, sessionCookieValue))
    await client.nextOf('subscribed')
    return client
  }

  await t.test('a login sent with the session\'s cookie replaces it', async (t) => {
    const replaced = await open(cookie)
    const otherBrowser = await login()
    const elsewhere = await open(otherBrowser)
    const renewed = await login(cookie)
    t.equal((await replaced.closed).code, CloseCode.loggedOut, 'the replaced session\'s socket: 4401')
    const stays = await open(renewed)
    elsewhere.send({ type: 'subscribe', topic: 'still' })
    t.match(await elsewhere.nextOf('subscribed'), { topic: 'still' }, 'a login from another browser is left alone')
    elsewhere.close()
    stays.close()
  })

  await t.test('an expired session, and one removed without a word reaching this instance', async (t) => {
    const expiring = await login()
    const removed = await login()
    const keeps = await login()
    const [a, b, c] = [await open(expiring), await open(removed), await open(keeps)]
    const sid = async (value: string): Promise<string> => {
      const rows = await app.db.query<{ sid: string }>('SELECT sid FROM sessions WHERE user_id = $1', [id])
      const found = rows.find((row) => decodeURIComponent(value).includes(`=${row.sid}.`))
      if (found === undefined) throw new Error('no session row for the cookie')
      return found.sid
    }
    await app.db.query("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE sid = $1", [await sid(expiring)])
    await app.db.query('DELETE FROM sessions WHERE sid = $1', [await sid(removed)])
    await app.closeEndedSessions()
    t.equal((await a.closed).code, CloseCode.loggedOut, 'expired: 4401')
    t.equal((await b.closed).code, CloseCode.loggedOut, 'gone from the store: 4401')
    c.send({ type: 'subscribe', topic: 'still' })
    t.match(await c.nextOf('subscribed'), { topic: 'still' }, 'a valid session stays')
    c.close()
  })
})

t.test('keep-alive terminates a peer that answers no ping, and its topics get left', async (t) => {
  const app = await buildTestApp(t, { KEEPALIVE_INTERVAL: '0.05' })
  const url = await listen(app)
  const silent = await register(app)
  const watcher = await register(app)
  const dead = await connectTcp(url, silent.cookie, await ticketFor(app, silent.cookie), { autoPong: false })
  const alive = await connectTcp(url, watcher.cookie, await ticketFor(app, watcher.cookie))
  await dead.nextOf('subscribed')
  await alive.nextOf('subscribed')
  t.same(await alive.nextOf('left'), { type: 'left', topic: 'general', user: silent.username })
  t.equal((await dead.closed).code, 1006, 'terminated, not closed politely')
  t.equal(app.chatConnections.size, 1, 'the peer that answers pings is kept')
  alive.close()
})

t.test('a consumer too slow to keep up is closed with 1013', async (t) => {
  const app = await buildTestApp(t, { SEND_BUFFER_LIMIT: '65536' })
  const url = await listen(app)
  const { cookie } = await register(app)
  const slow = await connectTcp(url, cookie, await ticketFor(app, cookie), { topic: 'firehose' })
  await slow.nextOf('subscribed')
  const fast = await connectTcp(url, cookie, await ticketFor(app, cookie), { topic: 'firehose' })
  await fast.nextOf('subscribed')
  // The slow one stops reading; the server's send buffer for it can only grow.
  const raw = (slow.socket as unknown as { _socket: import('node:net').Socket })._socket
  raw.pause()
  const notice = { type: 'joined', topic: 'firehose', user: 'x'.repeat(60_000) } as const
  const openConnections = () => [...app.chatConnections].filter((connection) => connection.isOpen).length
  let sent = 0
  while (openConnections() === 2 && sent < 10_000) {
    app.topicBus.broadcast('firehose', notice)
    sent++
    await new Promise<void>((resolve) => { setImmediate(resolve) })
  }
  t.equal(openConnections(), 1, 'the slow one was dropped')
  raw.resume()
  t.equal((await slow.closed).code, CloseCode.tryAgainLater)
  fast.send({ type: 'subscribe', topic: 'other' })
  t.match(await fast.nextOf('subscribed'), { topic: 'other' }, 'the fast one is unaffected')
  fast.close()
})

t.test('frames sent in one turn count against the send-buffer bound only for what the kernel did not take', async (t) => {
  const app = await buildTestApp(t, { SEND_BUFFER_LIMIT: '1024' })
  const url = await listen(app)
  const { cookie } = await register(app)
  const reader = await connectTcp(url, cookie, await ticketFor(app, cookie), { topic: 'burst' })
  await reader.nextOf('subscribed')
  // Ten 500-byte notices in one turn (as a commit's messages go): 5 KB, past the bound while
  // they gather, and taken by the socket at once when they leave.
  for (let i = 0; i < 10; i++) app.topicBus.broadcast('burst', { type: 'joined', topic: 'burst', user: `${i}`.padEnd(500, 'x') })
  for (let i = 0; i < 10; i++) t.match(await reader.nextOf('joined'), { user: new RegExp(`^${i}x`) })
  t.equal(reader.socket.readyState, reader.socket.OPEN, 'a reader that keeps up is not closed as slow')
  reader.close()
})

t.test('a large catch-up comes in replies of at most 1000 messages and 256 KiB, and never closes a reader as slow', async (t) => {
  const app = await buildTestApp(t)
  const { cookie, id } = await register(app)
  const total = 1020
  // 1,020 messages of 2,000 "€" (6 KB of UTF-8 each): about 6 MB in all.
  await app.db.query('INSERT INTO topics (name, last_id) VALUES ($1, $2)', ['big', total])
  await app.db.query(`INSERT INTO messages (topic, id, author_id, author, text, at)
    SELECT 'big', g, $1, 'writer', repeat('€', 2000), now() FROM generate_series(1, $2::int) g`, [id, total])
  const base = await listen(app)
  const client = await connectTcp(base, cookie, await ticketFor(app, cookie), { topic: 'other' })
  await client.nextOf('subscribed')
  const ids: number[] = []
  let since = 0
  let replies = 0
  const writer = await connect(app, (await register(app)).cookie, { topic: 'big' })
  await writer.nextOf('subscribed')
  for (;;) {
    client.send({ type: 'subscribe', topic: 'big', since })
    let reply
    // Messages published during the catch-up come in order, once, whichever way they come.
    for (let frame = await client.next(); reply === undefined; frame = await client.next()) {
      if (frame.type === 'subscribed') reply = frame
      else if (frame.type === 'message') ids.push(frame.id)
      if (reply !== undefined) break
    }
    if (reply === undefined) throw new Error('no reply')
    if (replies === 0) {
      for (let i = 0; i < 3; i++) {
        writer.send({ type: 'publish', topic: 'big', text: `live ${i}`, ref: `live${i}` })
        await writer.nextOf('ack')
      }
    }
    replies++
    const sizes = reply.history.map((message) => Buffer.byteLength(JSON.stringify(message)))
    t.ok(reply.history.length <= 1000, `reply ${replies}: ${reply.history.length} messages`)
    t.ok(sizes.slice(0, -1).reduce((sum, size) => sum + size, 0) < 256 * 1024, `reply ${replies}: under 256 KiB before its last message`)
    ids.push(...reply.history.map((message) => message.id))
    if (reply.truncated !== true) break
    since = reply.history.at(-1)?.id ?? since
  }
  t.same(ids, Array.from({ length: total + 3 }, (_, i) => i + 1), 'every message once, in order, the live ones too')
  t.ok(replies > 1, `${replies} replies`)
  client.send({ type: 'publish', topic: 'big', text: 'still here', ref: 'after' })
  t.equal((await client.nextOf('ack')).id, total + 4, 'the connection is still open and working')
  t.equal((await client.nextOf('message')).id, total + 4, 'and hears the topic live once caught up')
  client.close()
})

t.test('random bytes and random JSON: the server stays up and stores nothing unacked', async (t) => {
  const app = await buildTestApp(t, { PUBLISH_RATE: '1000', PUBLISH_BURST: '1000' })
  const url = await listen(app)
  const fuzzer = await register(app)
  const bystander = await register(app)
  const witness = await connectTcp(url, bystander.cookie, await ticketFor(app, bystander.cookie), { topic: 'fuzz' })
  await witness.nextOf('subscribed')

  const seed = randomBytes(4).readUInt32LE()
  t.comment(`seed ${seed}`)
  let state = seed
  const random = (): number => { state = (state * 1664525 + 1013904223) >>> 0; return state / 2 ** 32 }
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)] as T
  const values: unknown[] = [null, true, 0, -1, 1.5, 2 ** 60, '', 'fuzz', 'x'.repeat(3000), [], {}, ['publish'], { a: 1 }, '\u0000', '😀']
  const randomFrame = (): unknown => {
    const frame: Record<string, unknown> = {}
    if (random() < 0.9) frame.type = pick(['publish', 'subscribe', 'unsubscribe', 'nope', ...values])
    if (random() < 0.8) frame.topic = pick(['fuzz', 'other', 'Bad', ...values])
    if (random() < 0.7) frame.text = pick(['hello', 'x'.repeat(2001), ...values])
    if (random() < 0.7) frame.ref = pick([`ref-${Math.floor(random() * 50)}`, ...values])
    if (random() < 0.3) frame.since = pick([0, 1, ...values])
    return frame
  }

  let acked = 0
  let rounds = 0
  for (let connection = 0; connection < 4; connection++) {
    const client = await connectTcp(url, fuzzer.cookie, await ticketFor(app, fuzzer.cookie), { topic: 'fuzz' })
    await client.nextOf('subscribed')
    client.socket.on('message', (data: Buffer) => { if ((JSON.parse(data.toString()) as { type: string }).type === 'ack') acked++ })
    for (let i = 0; i < 100 && client.socket.readyState === client.socket.OPEN; i++) {
      const kind = random()
      if (kind < 0.5) client.send(randomFrame())
      else if (kind < 0.7) client.send(JSON.stringify(randomFrame()).slice(0, Math.floor(random() * 40)))
      else if (kind < 0.8) client.socket.send(randomBytes(Math.floor(random() * 64)), { binary: random() < 0.5 })
      else client.send(JSON.stringify(pick(values)))
      rounds++
    }
    // A subscribe answered means every frame before it has been handled.
    if (client.socket.readyState === client.socket.OPEN) {
      client.send({ type: 'subscribe', topic: 'fuzz-done' })
      await client.nextOf('subscribed').catch(() => undefined)
    }
    client.socket.terminate()
    await client.closed
  }
  t.ok(rounds > 0)
  const stored = await app.db.query<{ n: number }>('SELECT count(*)::int AS n FROM messages')
  t.equal(stored[0]?.n, await app.db.query<{ n: number }>('SELECT count(DISTINCT ref)::int AS n FROM messages').then((rows) => rows[0]?.n), 'one row per ref')
  t.ok((stored[0]?.n ?? 0) <= acked, 'every stored message was acked')

  witness.send({ type: 'publish', topic: 'fuzz', text: 'still fine', ref: 'witness' })
  t.match(await witness.nextOf('ack'), { ref: 'witness' }, 'and the server still serves others')
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200)
  witness.close()
})

t.test('shutdown acks in-flight publishes, then closes every socket with 1001', async (t) => {
  const app = await buildTestApp(t)
  const url = await listen(app)
  const { cookie } = await register(app)
  const client = await connectTcp(url, cookie, await ticketFor(app, cookie), { topic: 'bye' })
  await client.nextOf('subscribed')
  const frames: string[] = []
  client.socket.on('message', (data: Buffer) => { frames.push((JSON.parse(data.toString()) as { type: string }).type) })
  for (let i = 0; i < 5; i++) client.send({ type: 'publish', topic: 'bye', text: `last words ${i}`, ref: `bye-${i}` })
  // The first ack shows the frames have reached the server; the rest are in flight.
  await client.nextOf('ack')
  const closing = app.close()
  t.equal((await client.closed).code, CloseCode.shuttingDown)
  await closing
  t.equal(frames.filter((type) => type === 'ack').length, 5, 'all five publishes were acked before the close')
  t.equal(frames.at(-1), 'message', 'nothing was cut short')
})
