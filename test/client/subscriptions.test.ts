import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, register } from '../helpers/app.js'
import { ticketFor } from '../helpers/chat.js'
import { listen } from '../helpers/http.js'
import { ids, lastSocket, publishOverHttp, recordingWebSocket, watchedClient } from './helpers.js'

/**
 * A subscribed topic across dropped sockets, against a real server: what was missed comes
 * with `since`, through `truncated`, from where the last reply stopped when a drop cuts the
 * catch-up short; a consumer closed as too slow (1013) comes back at once and catches up.
 * Nothing is skipped, nothing told twice.
 */

/** Texts of 32,000 characters: a `since` reply (256 KiB at most) holds about eight. */
const bigText = (i: number): string => `${i} `.padEnd(32_000, 'x')

/** A ticket function that, while `hold` is set, waits for it: the next socket opens only when the test says. */
function heldTickets (app: FastifyInstance, cookie: string): { ticket: () => Promise<string>, hold: () => () => void } {
  let held: Promise<void> | undefined
  return {
    ticket: async () => {
      await held
      return await ticketFor(app, cookie)
    },
    hold: () => {
      let release = (): void => {}
      held = new Promise((resolve) => { release = resolve })
      return () => {
        held = undefined
        release()
      }
    }
  }
}

t.test('a catch-up cut by a drop resumes from the last id told: nothing skipped, nothing twice', async (t) => {
  const app = await buildTestApp(t, { MAX_MESSAGE_CHARS: '32768', HISTORY_LIMIT: '5', PUBLISH_RATE: '100000', PUBLISH_BURST: '100000' })
  const url = await listen(app)
  const reader = await register(app)
  const writer = await register(app)
  const topic = 'catch-up'
  const missed = 40
  const tickets = heldTickets(app, reader.cookie)
  const { WebSocket: Recording, sockets, sent } = recordingWebSocket()
  const { client, told, states, messages } = watchedClient(t, { url, WebSocket: Recording, auth: { kind: 'session', cookie: reader.cookie, ticket: tickets.ticket } })
  await client.subscribe(topic)
  t.same(told.get(topic), undefined, 'an empty topic: held from its start')

  // Away: the socket drops, and the next one waits while the writer publishes.
  const release = tickets.hold()
  const away = client.once('state', (state) => state.state === 'reconnecting')
  lastSocket(sockets).terminate()
  t.match(await away, { code: 1006, willReconnect: true })
  await publishOverHttp(app, writer.cookie, topic, Array.from({ length: missed }, (_, i) => bigText(i)))

  // Back: the first truncated reply is the last thing the second socket delivers.
  let toldAtCut = -1
  const cut = client.once('subscribed', (event) => event.truncated).then(() => {
    toldAtCut = told.get(topic)?.at(-1) ?? 0
    lastSocket(sockets).terminate()
  })
  release()
  await cut
  t.equal(sockets.length, 2)
  t.ok(toldAtCut > 0 && toldAtCut < missed, `cut mid-way, after ${toldAtCut} of ${missed}`)
  const dropped = await client.once('state', (state) => state.state === 'reconnecting')
  t.match(dropped, { code: 1006, willReconnect: true })
  const toldBeforeThird = told.get(topic)?.at(-1)

  await messages(topic, missed)
  t.same(told.get(topic), ids(missed), 'every message once, in order')
  const thirdSubscribes = sent.filter((frame) => frame.socket === 3 && frame.type === 'subscribe')
  t.match(thirdSubscribes[0], { topic, since: toldBeforeThird }, 'the third socket resumes from the last id told, not from the newest seen')
  t.same(sent.filter((frame) => frame.socket === 2 && frame.type === 'subscribe').map((frame) => frame.since), [0, toldAtCut],
    'the second socket asked from the start (the topic was empty), then from where the first reply stopped')
  t.same(states.map((state) => state.state), ['connecting', 'open', 'reconnecting', 'open', 'reconnecting', 'open'])

  // Live again: the next message comes once.
  await publishOverHttp(app, writer.cookie, topic, ['after'])
  await messages(topic, missed + 1)
  t.same(told.get(topic), ids(missed + 1))
})

t.test('closed as too slow (1013): back at once, and caught up with since', async (t) => {
  const app = await buildTestApp(t, { SEND_BUFFER_LIMIT: '65536', PUBLISH_RATE: '100000', PUBLISH_BURST: '100000' })
  const url = await listen(app)
  const reader = await register(app)
  const writer = await register(app)
  const topic = 'firehose'
  const { WebSocket: Recording, sockets } = recordingWebSocket()
  const { client, told, messages } = watchedClient(t, { url, WebSocket: Recording, auth: { kind: 'session', cookie: reader.cookie } })
  await client.subscribe(topic)
  await publishOverHttp(app, writer.cookie, topic, ['before'])
  await messages(topic, 1)

  // The reader stops reading; the server's send buffer for it can only grow.
  const raw = (lastSocket(sockets) as unknown as { _socket: import('node:net').Socket })._socket
  raw.pause()
  await publishOverHttp(app, writer.cookie, topic, ['while slow 1', 'while slow 2'])
  const notice = { type: 'joined', topic, user: 'x'.repeat(60_000) } as const
  const readerOpen = (): boolean => [...app.chatConnections].some((connection) => connection.isOpen)
  for (let sent = 0; readerOpen() && sent < 10_000; sent++) {
    app.topicBus.broadcast(topic, notice)
    await new Promise<void>((resolve) => { setImmediate(resolve) })
  }
  t.notOk(readerOpen(), 'the server closed it')
  // Published after the close: only `since` can bring these.
  await publishOverHttp(app, writer.cookie, topic, ['after the close 1', 'after the close 2'])
  const reconnecting = client.once('state', (state) => state.state === 'reconnecting')
  raw.resume()
  t.match(await reconnecting, { code: 1013, willReconnect: true, delayMs: 0 }, 'reconnects at once')
  await messages(topic, 5)
  t.same(told.get(topic), ids(5), 'every message once, in order')
  t.equal(sockets.length, 2)
})
