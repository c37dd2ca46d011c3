import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, register, uniqueName, unhurriedCommits } from '../helpers/app.js'
import { connect, ticketFor, type ChatClient } from '../helpers/chat.js'
import type { MessageFrame } from '../../src/protocol.js'

/** Publishes over HTTP as `cookie`; returns the stored message. */
async function publishHttp (app: FastifyInstance, cookie: string, topic: string, text: string, ref?: string): Promise<MessageFrame> {
  const response = await app.inject({ method: 'POST', url: `/api/topics/${topic}/messages`, headers: { cookie }, payload: ref === undefined ? { text } : { text, ref } })
  if (response.statusCode !== 201) throw new Error(`publish: ${response.statusCode} ${response.body}`)
  return response.json<{ message: MessageFrame }>().message
}

async function count (app: FastifyInstance, topic?: string): Promise<number> {
  const rows = await app.db.query<{ n: number }>(
    topic === undefined ? 'SELECT count(*)::int AS n FROM messages' : 'SELECT count(*)::int AS n FROM messages WHERE topic = $1',
    topic === undefined ? [] : [topic])
  return rows[0]?.n ?? -1
}

t.test('the handshake is refused before the upgrade', async (t) => {
  const app = await buildTestApp(t, { ALLOWED_ORIGINS: 'https://friend.example', MAX_CONNECTIONS_PER_USER: '2', METRICS_PORT: '0' })
  const { cookie } = await register(app)
  const ticket = await ticketFor(app, cookie)
  const open = async (query: string, headers: Record<string, string> = {}) =>
    await app.injectWS(`/chat?${query}`, { headers: { cookie, ...headers } })

  await t.rejects(app.injectWS(`/chat?ticket=${ticket}`), /Unexpected server response: 401/, 'no session: 401')
  await t.rejects(open(''), /Unexpected server response: 403/, 'no ticket: 403')
  await t.rejects(open('ticket=not-the-ticket'), /Unexpected server response: 403/, 'a wrong ticket: 403')
  const other = await register(app)
  await t.rejects(open(`ticket=${await ticketFor(app, other.cookie)}`), /Unexpected server response: 403/, "another session's ticket: 403")
  await t.rejects(open(`ticket=${ticket}`, { origin: 'https://evil.example' }), /Unexpected server response: 403/, 'a foreign origin: 403')

  const viaFriend = await open(`ticket=${ticket}`, { origin: 'https://friend.example' })
  t.pass('an allowed origin opens')
  const viaSelf = await open(`ticket=${ticket}`, { origin: 'http://localhost:80', host: 'localhost:80' })
  t.pass("the server's own origin opens")
  await t.rejects(open(`ticket=${ticket}`), /Unexpected server response: 429/, 'over the connections per user: 429')
  viaFriend.terminate()
  viaSelf.terminate()

  const http = await app.inject({ url: `/chat?ticket=${ticket}`, headers: { cookie } })
  t.not(http.statusCode, 101, 'a plain GET is no upgrade')

  const metrics = await (await fetch(`${app.metricsUrl ?? ''}/metrics`)).text()
  const refusals = Object.fromEntries([...metrics.matchAll(/^canopy_ws_refusals_total\{status="(\d+)"\} (\d+)$/gm)].map(([, status, n]) => [status, Number(n)]))
  t.same(refusals, { 401: 1, 403: 4, 429: 1 }, 'canopy_ws_refusals_total counts the upgrades refused, by status; not the plain GET, not those that opened')
})

t.test('a connection', async (t) => {
  const app = await buildTestApp(t, { HISTORY_LIMIT: '5' }, unhurriedCommits)
  const alice = await register(app, uniqueName('alice'))
  const bob = await register(app, uniqueName('bob'))

  await t.test('is subscribed to general by default, with its history', async (t) => {
    const client = await connect(app, alice.cookie)
    t.same(await client.next(), { type: 'subscribed', topic: 'general', history: [], present: [alice.username] })
    client.close()
  })

  await t.test('gets exactly the HISTORY_LIMIT most recent messages, oldest first', async (t) => {
    const sent = []
    for (let i = 1; i <= 8; i++) sent.push(await publishHttp(app, alice.cookie, 'history', `message ${i}`))
    const client = await connect(app, bob.cookie, { topic: 'history' })
    const subscribed = await client.nextOf('subscribed')
    t.equal(subscribed.topic, 'history')
    t.same(subscribed.history, sent.slice(3))
    t.same(subscribed.history.map((m) => m.id), [4, 5, 6, 7, 8])
    t.equal(subscribed.history[0]?.author, alice.username)
    client.close()
  })

  await t.test('a bad topic in the URL is an error, and the connection works', async (t) => {
    const client = await connect(app, alice.cookie, { topic: 'Not A Topic' })
    t.match(await client.next(), { type: 'error', code: 'bad_topic' })
    client.send({ type: 'subscribe', topic: 'fine' })
    t.match(await client.next(), { type: 'subscribed', topic: 'fine' })
    client.close()
  })

  await t.test('two users see each other in order, with acks, joined and left', async (t) => {
    const a = await connect(app, alice.cookie, { topic: 'pair' })
    await a.nextOf('subscribed')
    const b = await connect(app, bob.cookie, { topic: 'pair' })
    await b.nextOf('subscribed')
    t.same(await a.next(), { type: 'joined', topic: 'pair', user: bob.username })

    for (let i = 0; i < 10; i++) {
      a.send({ type: 'publish', topic: 'pair', text: `a${i}`, ref: `a-${i}` })
      b.send({ type: 'publish', topic: 'pair', text: `b${i}`, ref: `b-${i}` })
    }
    const seen = async (client: ChatClient, acksFor: string) => {
      const messages: MessageFrame[] = []
      const acks: number[] = []
      while (messages.length < 20 || acks.length < 10) {
        const frame = await client.next()
        if (frame.type === 'message') messages.push(frame)
        else if (frame.type === 'ack') {
          t.match(frame.ref, new RegExp(`^${acksFor}-\\d$`))
          t.ok(messages.every((m) => m.id !== frame.id), 'the ack comes before the message itself')
          acks.push(frame.id)
        } else t.fail(`unexpected ${frame.type}`)
      }
      return { messages, acks }
    }
    const [fromA, fromB] = await Promise.all([seen(a, 'a'), seen(b, 'b')])
    t.same(fromA.messages, fromB.messages, 'both see the same messages in the same order')
    t.same(fromA.messages.map((m) => m.id), Array.from({ length: 20 }, (_, i) => i + 1), 'ids increase by one')
    t.same(fromA.messages.filter((m) => m.author === alice.username).map((m) => m.text), Array.from({ length: 10 }, (_, i) => `a${i}`), "each publisher's messages in its order")
    t.same(fromB.messages.filter((m) => m.author === bob.username).map((m) => m.text), Array.from({ length: 10 }, (_, i) => `b${i}`))
    t.ok(fromA.messages.every((m) => !Number.isNaN(Date.parse(m.at)) && m.at.endsWith('Z')), 'at is ISO-8601 from the server')

    b.socket.terminate()
    t.same(await a.nextOf('left'), { type: 'left', topic: 'pair', user: bob.username })
    a.close()
  })

  await t.test('author and time come from the server', async (t) => {
    const client = await connect(app, alice.cookie, { topic: 'forge' })
    await client.nextOf('subscribed')
    client.send({ type: 'publish', topic: 'forge', text: 'hi', ref: 'forge-1', author: 'someone-else', at: '2000-01-01T00:00:00Z', id: 999 })
    const ack = await client.nextOf('ack')
    const message = await client.nextOf('message')
    t.equal(message.author, alice.username)
    t.equal(message.id, ack.id)
    t.equal(message.at, ack.at)
    t.not(message.at, '2000-01-01T00:00:00.000Z')
    client.close()
  })

  await t.test('a ref resent by the same user stores nothing new and acks with the first id', async (t) => {
    const client = await connect(app, alice.cookie, { topic: 'idem' })
    await client.nextOf('subscribed')
    client.send({ type: 'publish', topic: 'idem', text: 'once', ref: 'same-ref' })
    const first = await client.nextOf('ack')
    await client.nextOf('message')
    client.send({ type: 'publish', topic: 'idem', text: 'once', ref: 'same-ref' })
    const again = await client.nextOf('ack')
    t.same(again, first)
    t.equal(await count(app, 'idem'), 1)
    const viaHttp = await publishHttp(app, alice.cookie, 'idem', 'once', 'same-ref')
    t.equal(viaHttp.id, first.id, 'over HTTP too')
    const other = await publishHttp(app, bob.cookie, 'idem', 'once', 'same-ref')
    t.equal(other.id, first.id + 1, 'another user may use the same ref')
    t.same(await client.nextOf('message'), other, 'and the resends were never delivered')
    client.close()
  })

  await t.test('subscribe and unsubscribe frames', async (t) => {
    const client = await connect(app, alice.cookie, { topic: 'one' })
    await client.nextOf('subscribed')
    client.send({ type: 'subscribe', topic: 'two' })
    t.match(await client.next(), { type: 'subscribed', topic: 'two', history: [] })
    client.send({ type: 'subscribe', topic: 'two' })
    t.match(await client.next(), { type: 'subscribed', topic: 'two' }, 'subscribing again answers again')
    const message = await publishHttp(app, bob.cookie, 'two', 'to two')
    t.same(await client.next(), message)
    const next = await publishHttp(app, bob.cookie, 'one', 'to one')
    t.same(await client.next(), next, 'the live feed of two was not doubled: the next frame is from one')

    client.send({ type: 'unsubscribe', topic: 'two' })
    t.same(await client.next(), { type: 'unsubscribed', topic: 'two' })
    await publishHttp(app, bob.cookie, 'two', 'not for you')
    const after = await publishHttp(app, bob.cookie, 'one', 'still for you')
    t.same(await client.next(), after, 'nothing from two after unsubscribing')
    client.send({ type: 'unsubscribe', topic: 'never-subscribed' })
    t.same(await client.next(), { type: 'unsubscribed', topic: 'never-subscribed' })
    client.close()
  })

  await t.test('since returns exactly the missed messages, and truncates at 1000', async (t) => {
    const client = await connect(app, alice.cookie, { topic: 'since' })
    await client.nextOf('subscribed')
    const before = []
    for (let i = 0; i < 3; i++) before.push(await publishHttp(app, bob.cookie, 'since', `seen ${i}`))
    for (const m of before) t.same(await client.next(), m)
    client.close()
    await client.closed
    const missed = []
    for (let i = 0; i < 4; i++) missed.push(await publishHttp(app, bob.cookie, 'since', `missed ${i}`))
    const back = await connect(app, alice.cookie, { topic: 'elsewhere' })
    await back.nextOf('subscribed')
    back.send({ type: 'subscribe', topic: 'since', since: before.at(-1)?.id })
    const subscribed = await back.next()
    t.same(subscribed, { type: 'subscribed', topic: 'since', history: missed, present: [alice.username] })
    back.send({ type: 'subscribe', topic: 'since', since: 0 })
    t.same((await back.nextOf('subscribed')).history, [...before, ...missed], 'since 0 is from the start')
    const live = await publishHttp(app, bob.cookie, 'since', 'live')
    t.same(await back.next(), live, 'then live, once')

    // Rows written past the topic bus (which keeps a subscribed topic's latest messages), in a
    // topic nobody here is subscribed to: the subscribe reads them from the table.
    await app.db.query(`
      WITH bump AS (INSERT INTO topics (name, last_id) VALUES ('bulk', 1001) RETURNING last_id)
      INSERT INTO messages (topic, id, author_id, author, text)
      SELECT 'bulk', g, $1, 'bulk', 'bulk ' || g FROM bump, generate_series(1, 1001) g`, [bob.id])
    back.send({ type: 'subscribe', topic: 'bulk', since: 0 })
    const big = await back.nextOf('subscribed')
    t.equal(big.history.length, 1000)
    t.equal(big.truncated, true)
    t.equal(big.history[0]?.id, 1)
    back.send({ type: 'subscribe', topic: 'bulk', since: big.history.at(-1)?.id })
    const rest = await back.nextOf('subscribed')
    t.equal(rest.history.length, 1)
    t.notOk('truncated' in rest)
    back.close()
  })
})
