import t from 'tap'
import { buildApp } from '../../server/app.js'
import { buildTestApp, register, unhurriedCommits } from '../helpers/app.js'
import { listen } from '../helpers/http.js'
import { ids, recordingWebSocket, watchedClient } from './helpers.js'

/**
 * Publishes against a real server: a burst over PUBLISH_BURST is paced by the server's
 * `retryAfterMs` and never closed; a server restart with publishes in flight loses none and
 * stores none twice. Every publish is acked once, and the ids come out gapless.
 */

const count = 60

/** Every ack's id, sorted. */
function sortedIds (acks: Array<{ id: number }>): number[] {
  return acks.map((ack) => ack.id).sort((a, b) => a - b)
}

t.test('a burst over PUBLISH_BURST: paced by retryAfterMs, never closed with 1008, every publish acked once', async (t) => {
  // A rate below what the server can store, so that it is the limit that paces the client.
  const app = await buildTestApp(t, { PUBLISH_RATE: '20', PUBLISH_BURST: '5' }, unhurriedCommits)
  const url = await listen(app)
  const { cookie } = await register(app)
  // Sent and not acked: refused ones waiting to go again count too.
  const inFlight = new Set<string>()
  let mostInFlight = 0
  const { WebSocket: Recording, sent } = recordingWebSocket((frame) => {
    if (frame.type !== 'publish' || frame.ref === undefined) return
    inFlight.add(frame.ref)
    mostInFlight = Math.max(mostInFlight, inFlight.size)
  })
  const { client, states, told, messages } = watchedClient(t, { url, WebSocket: Recording, auth: { kind: 'session', cookie } })
  let refusals = 0
  client.on('error', (frame) => { if (frame.code === 'rate_limited' && typeof frame.retryAfterMs === 'number') refusals++ })
  client.on('ack', (ack) => { inFlight.delete(ack.ref) })
  await client.subscribe('burst')

  const acks = await Promise.all(Array.from({ length: count }, async (_, i) => await client.publish('burst', `burst ${i}`)))
  t.same(sortedIds(acks), ids(count), 'every publish acked once, ids gapless')
  t.ok(refusals > 0, `the server said rate_limited (${refusals} times)`)
  t.ok(mostInFlight <= 32, `at most 32 in flight (${mostInFlight})`)
  t.notOk(states.some((state) => state.state !== 'open' && state.state !== 'connecting'), 'never closed')
  const publishes = sent.filter((frame) => frame.type === 'publish')
  t.equal(new Set(publishes.map((frame) => frame.ref)).size, count, 'resent with the same refs')
  t.ok(publishes.length > count, 'some were sent again')
  await messages('burst', count)
  t.same(told.get('burst'), ids(count), 'and told to the subscriber once each, in order')
})

t.test('a server restart with publishes in flight: every publish acked once, ids gapless', async (t) => {
  const env = { PUBLISH_RATE: '100000', PUBLISH_BURST: '100000' }
  const first = await buildTestApp(t, env, unhurriedCommits)
  const url = await listen(first)
  const port = Number(new URL(url).port)
  const { cookie } = await register(first)
  const { WebSocket: Recording, sockets } = recordingWebSocket()
  const { client, states, told, messages } = watchedClient(t, { url, WebSocket: Recording, auth: { kind: 'session', cookie } })
  await client.subscribe('restart')

  // The first ack stops the server, with the rest of the window in flight and more queued.
  let stopped: Promise<void> | undefined
  client.on('ack', () => { stopped ??= first.close() })
  const acked = Promise.all(Array.from({ length: count }, async (_, i) => await client.publish('restart', `restart ${i}`)))
  const dropped = await client.once('state', (state) => state.state === 'reconnecting')
  await stopped
  t.ok(client.pending().length > 0, `${client.pending().length} of ${count} not acked when the server stopped`)

  // The same database, the same port: the client comes back by itself.
  const second = await buildApp({ ...first.config, ...unhurriedCommits })
  t.teardown(async () => { await second.close() })
  await listen(second, port)
  const acks = await acked
  t.match(dropped, { state: 'reconnecting', code: 1001, willReconnect: true }, 'the server said it was shutting down')
  t.same(sortedIds(acks), ids(count), 'every publish acked once, ids gapless')
  const stored = await second.inject({ url: `/api/topics/restart/messages?limit=${count}`, headers: { cookie } })
  t.same(stored.json<{ messages: Array<{ text: string }> }>().messages.map((message) => message.text).sort(),
    Array.from({ length: count }, (_, i) => `restart ${i}`).sort(), 'each stored once')
  await messages('restart', count)
  t.same(told.get('restart'), ids(count), 'told to the subscriber once each, in order')
  t.ok(sockets.length >= 2)
  t.equal(states.at(-1)?.state, 'open')
})
