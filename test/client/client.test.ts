import t from 'tap'
import { WebSocket } from 'ws'
import { CanopyClient, CanopyError, type OutboxEntry, type OutboxStore } from '../../client/src/index.js'
import { buildTestApp, register } from '../helpers/app.js'
import { listen } from '../helpers/http.js'
import { ticketFor } from '../helpers/chat.js'
import { fastBackoff, ids, publishOverHttp, recordingWebSocket, watchedClient } from './helpers.js'

/**
 * The client library against a real server, over TCP, with `ws`: a session connects,
 * subscribes and publishes; the socket's life (open, 4401, a refused upgrade); and the
 * outbox store, which carries publishes over to the next client.
 */

t.test('a session subscribes, publishes and is told its own message once, after the ack', async (t) => {
  const app = await buildTestApp(t)
  const url = await listen(app)
  const { cookie, username } = await register(app)
  const { WebSocket: Recording, sent } = recordingWebSocket()
  const { client, told, states, messages } = watchedClient(t, { url, WebSocket: Recording, auth: { kind: 'session', cookie } })
  const order: string[] = []
  client.on('ack', () => { order.push('ack') })
  client.on('message', () => { order.push('message') })

  await client.subscribe('general')
  t.equal(client.state, 'open')
  t.same(states.map((state) => state.state), ['connecting', 'open'])
  t.ok(states.every((state) => state.willReconnect), 'it will reconnect if dropped')
  t.same(sent.filter((frame) => frame.type === 'subscribe'), [], 'the URL subscribed it: nothing else asked')

  const ack = await client.publish('general', 'hello from the library')
  t.match(ack, { id: 1, at: String })
  await messages('general', 1)
  t.same(told.get('general'), [1])
  t.same(order, ['ack', 'message'], 'the ack before the message (docs/protocol.md)')
  t.same(client.pending(), [], 'nothing left to send')
  const publish = sent.find((frame) => frame.type === 'publish')
  t.match(publish, { socket: 1, topic: 'general', ref: /^[0-9a-f]{32}$/ }, 'a ref made by the library')

  // Another topic on the same socket, with a message already in it.
  await publishOverHttp(app, cookie, 'second', ['first of second', 'second of second'])
  await client.subscribe('second')
  t.same(told.get('second'), [1, 2], 'its most recent history, told as messages')
  t.same(client.topics, ['general', 'second'])
  t.match(sent.at(-1), { type: 'subscribe', topic: 'second' })
  t.notOk('since' in (sent.at(-1) ?? {}), 'the first time: the most recent history, no since')

  // Presence of another session passes through.
  const other = await register(app)
  const otherClient = watchedClient(t, { url, WebSocket, auth: { kind: 'session', cookie: other.cookie } }).client
  const joined = client.once('joined', (frame) => frame.user === other.username)
  await otherClient.subscribe('second')
  t.match(await joined, { type: 'joined', topic: 'second', user: other.username })
  t.not(other.username, username)
})

t.test('a publish refused for good rejects with the server\'s code; one the library can tell is wrong never leaves', async (t) => {
  const app = await buildTestApp(t, { MAX_MESSAGE_CHARS: '10' })
  const url = await listen(app)
  const { cookie } = await register(app)
  const { WebSocket: Recording, sent } = recordingWebSocket()
  const { client } = watchedClient(t, { url, WebSocket: Recording, auth: { kind: 'session', cookie } })
  const errors: string[] = []
  client.on('error', (frame) => { errors.push(frame.code) })

  const tooLong = client.publish('general', 'far more than ten characters')
  await t.rejects(tooLong, { name: 'CanopyError', code: 'too_long' })
  t.same(errors, ['too_long'], 'told as an event too')
  t.same(client.pending(), [])
  const refused = client.publish('Not A Topic', 'hi', { ref: 'mine-1' })
  await t.rejects(refused, new CanopyError('bad_topic', 'not a topic name: Not A Topic', { ref: 'mine-1' }))
  await t.rejects(client.subscribe('Not A Topic'), { code: 'bad_topic' })
  await t.rejects(client.publish('general', 'x'.repeat(70_000)), { code: 'bad_request' })
  t.same(sent.filter((frame) => frame.type === 'publish').length, 1, 'only the first was sent')
  t.match(await client.publish('general', 'short'), { id: 1 }, 'the socket is fine')
})

t.test('logged out: the socket closes with 4401 and the client is closed for good', async (t) => {
  const app = await buildTestApp(t)
  const url = await listen(app)
  const { cookie } = await register(app)
  const { WebSocket: Recording, sockets } = recordingWebSocket()
  const { client, states } = watchedClient(t, { url, WebSocket: Recording, auth: { kind: 'session', cookie } })
  await client.subscribe('general')

  const closed = client.once('state', (state) => state.state === 'closed')
  const response = await app.inject({ method: 'POST', url: '/api/logout', headers: { cookie } })
  t.equal(response.statusCode, 204)
  t.same(await closed, { state: 'closed', code: 4401, reason: 'logged out', willReconnect: false })
  t.equal(client.state, 'closed')
  t.notOk(states.some((state) => state.state === 'reconnecting'), 'never reconnecting')
  t.equal(sockets.length, 1, 'no other socket')
  await t.rejects(client.publish('general', 'too late'), { code: 'closed' })
  await t.rejects(client.subscribe('other'), { code: 'closed' })
})

t.test('no session, a key or a token the server does not take: closed as unauthorized, never retried', async (t) => {
  const app = await buildTestApp(t)
  const url = await listen(app)
  const { cookie } = await register(app)
  await app.inject({ method: 'POST', url: '/api/logout', headers: { cookie } })

  const session = watchedClient(t, { url, WebSocket, auth: { kind: 'session', cookie } })
  t.same(await session.client.once('state', (state) => state.state === 'closed'), { state: 'closed', reason: 'unauthorized', willReconnect: false }, 'GET /api/me said 401')

  // Keys and tokens come later on the server: today both are refused before the upgrade.
  for (const auth of [{ kind: 'key', key: 'not-a-key' }, { kind: 'token', token: () => 'not.a.token' }] as const) {
    const { WebSocket: Recording, sockets } = recordingWebSocket()
    const { client } = watchedClient(t, { url, WebSocket: Recording, auth })
    t.match(await client.once('state', (state) => state.state === 'closed'), { state: 'closed', reason: 'unauthorized', willReconnect: false }, `${auth.kind}: 401 before the upgrade`)
    t.equal(sockets.length, 1, `${auth.kind}: tried once`)
  }
})

t.test('publishes kept by the outbox store are sent by the next client, once', async (t) => {
  const app = await buildTestApp(t)
  const url = await listen(app)
  const { cookie } = await register(app)
  const kept = new Map<string, OutboxEntry>()
  const store: OutboxStore = {
    load: () => [...kept.values()],
    put: (entry) => { kept.set(entry.ref, entry) },
    delete: (ref) => { kept.delete(ref) }
  }

  // A client that never gets a socket (its ticket never comes), then is closed: a reload.
  const never = new Promise<string>(() => {})
  const first = new CanopyClient({ url, WebSocket, auth: { kind: 'session', cookie, ticket: async () => await never }, outbox: store })
  const published = ['one', 'two', 'three'].map((text) => first.publish('kept', text))
  t.same([...kept.values()].map((entry) => entry.text), ['one', 'two', 'three'], 'stored as they were made')
  await t.rejects(first.publish('kept', 'the same ref again', { ref: [...kept.keys()][0] }), { code: 'bad_request' }, 'a ref on its way already')
  const allAcked = first.allAcked()
  first.close()
  await t.rejects(allAcked, { code: 'closed' }, 'closed before they were acked')
  for (const promise of published) await t.rejects(promise, { code: 'closed' })
  t.equal(kept.size, 3, 'still kept after the close')

  const { client, told, messages } = watchedClient(t, { url, WebSocket, auth: { kind: 'session', cookie, ticket: async () => await ticketFor(app, cookie) }, outbox: store, backoff: fastBackoff })
  const refs = [...kept.keys()]
  const acks: string[] = []
  client.on('ack', (ack) => { acks.push(ack.ref) })
  await client.subscribe('kept')
  t.same(client.pending().map((entry) => entry.ref), refs, 'restored, in order')
  await client.allAcked()
  t.same(acks.sort(), refs.sort(), 'every one acked, with the ref it was made with')
  await client.allAcked()
  t.pass('nothing pending: at once')
  t.equal(kept.size, 0, 'and no longer kept')
  await messages('kept', 3)
  t.same(told.get('kept'), ids(3), 'each once')
})
