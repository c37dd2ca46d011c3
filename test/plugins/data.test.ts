import t from 'tap'
import { buildTestApp, register } from '../helpers/app.js'
import { connect } from '../helpers/chat.js'
import { maxDataBytes, type MessageFrame } from '../../src/protocol.js'

// `data` over WebSocket and HTTP, and `bot` on a bot's messages (docs/protocol.md).

const values: Array<[string, unknown]> = [
  ['a nested object', { a: { b: { c: [1, { d: 'e' }] } }, empty: {}, none: null, yes: true }],
  ['an array', [1, 'two', [3, [4]], { five: 5 }]],
  ['numbers', [0, -1, 2.5, 1e-7, 1e21, Number.MAX_SAFE_INTEGER]],
  ['unicode', { κλειδί: 'ünïcödé ✓ 🌲', emoji: '👩‍👩‍👧' }],
  ['a string', 'just a string'],
  ['a number', 42],
  ['false', false]
]

/** A JSON string value of exactly `bytes` bytes as compact JSON (its two quotes included). */
const stringOfBytes = (bytes: number): string => 'x'.repeat(bytes - 2)

t.test('data over WebSocket and HTTP', async (t) => {
  const app = await buildTestApp(t)
  const { cookie, username } = await register(app)
  const client = await connect(app, cookie, { topic: 'data' })
  await client.nextOf('subscribed')
  const post = async (payload: unknown) =>
    await app.inject({ method: 'POST', url: '/api/topics/data/messages', headers: { cookie }, payload: payload as Record<string, unknown> })
  const delivered: MessageFrame[] = []

  await t.test('any JSON value is delivered unchanged, live, by HTTP answer, in history and pages', async (t) => {
    for (const [what, data] of values) {
      client.send({ type: 'publish', topic: 'data', data, ref: `ws-${what}` })
      const ack = await client.nextOf('ack')
      const message = await client.nextOf('message')
      t.same(message, { type: 'message', topic: 'data', id: ack.id, author: username, text: '', data, at: ack.at }, `WebSocket: ${what}`)
      delivered.push(message)
      const response = await post({ text: `with ${what}`, data, ref: `http-${what}` })
      t.equal(response.statusCode, 201, `HTTP: ${what}`)
      const answered = response.json<{ message: MessageFrame }>().message
      t.same(answered.data, data, `HTTP answer: ${what}`)
      t.same(await client.nextOf('message'), answered, `HTTP, delivered: ${what}`)
      delivered.push(answered)
    }
    client.send({ type: 'publish', topic: 'data', text: 'plain', ref: 'ws-plain' })
    const plain = await client.nextOf('message')
    t.notOk('data' in plain, 'no data key without data')
    t.notOk('bot' in plain, 'no bot key for a person')
    delivered.push(plain)
    const page = await app.inject({ url: '/api/topics/data/messages?limit=100', headers: { cookie } })
    t.same(page.json<{ messages: MessageFrame[] }>().messages, delivered, 'a page')
    const resub = await connect(app, cookie, { topic: 'data' })
    const history = (await resub.nextOf('subscribed')).history
    t.same(history, delivered.slice(-history.length), 'history')
    resub.send({ type: 'subscribe', topic: 'data', since: 0 })
    t.same((await resub.nextOf('subscribed')).history, delivered, 'since')
    resub.close()
  })

  await t.test('a repeated ref with data acks the first id', async (t) => {
    client.send({ type: 'publish', topic: 'data', data: { once: 1 }, ref: 'repeat' })
    const first = await client.nextOf('ack')
    await client.nextOf('message')
    client.send({ type: 'publish', topic: 'data', data: { once: 2 }, ref: 'repeat' })
    t.equal((await client.nextOf('ack')).id, first.id)
    const again = await post({ data: { once: 3 }, ref: 'repeat' })
    t.same(again.json<{ message: MessageFrame }>().message.data, { once: 1 }, 'over HTTP: the first message')
  })

  await t.test('data of exactly the limit is taken; one byte over, null, NUL or nothing at all is bad_request', async (t) => {
    const atLimit = stringOfBytes(maxDataBytes)
    t.equal(Buffer.byteLength(JSON.stringify(atLimit)), maxDataBytes)
    client.send({ type: 'publish', topic: 'data', data: atLimit, ref: 'at-limit' })
    t.equal((await client.nextOf('message')).data, atLimit, 'WebSocket: exactly the limit')
    t.equal((await post({ data: atLimit })).statusCode, 201, 'HTTP: exactly the limit')
    await client.nextOf('message')
    const multiByte = { s: 'é'.repeat((maxDataBytes - 8) / 2) + 'x' } // {"s":"…"} is 8 bytes; é is 2
    t.equal(Buffer.byteLength(JSON.stringify(multiByte)), maxDataBytes + 1, 'counted in bytes, not characters')
    const stored = (await app.db.query('SELECT 1 FROM messages')).length
    const refusals: Array<[string, unknown, RegExp]> = [
      ['one byte over', stringOfBytes(maxDataBytes + 1), /over 16384/],
      ['one byte over in two-byte characters', multiByte, /over 16384/],
      ['null', null, /but null/],
      ['NUL inside', { a: ['x\u0000y'] }, /NUL/],
      ['NUL in a key', { 'a\u0000': 1 }, /NUL/],
      ['half a surrogate pair', ['\ud800'], /surrogate/]
    ]
    for (const [what, data] of refusals) {
      client.send({ type: 'publish', topic: 'data', data, ref: `bad-${what}` })
      t.match(await client.nextOf('error'), { code: 'bad_request', ref: `bad-${what}`, message: pattern(what, refusals) }, `WebSocket: ${what}`)
      const response = await post({ data, ref: `bad-${what}` })
      t.equal(response.statusCode, 400, `HTTP: ${what}`)
      t.match(response.json(), { error: 'bad_request' }, `HTTP: ${what}`)
    }
    client.send({ type: 'publish', topic: 'data', ref: 'nothing' })
    t.match(await client.nextOf('error'), { code: 'bad_request', ref: 'nothing', message: /text, data or both/ }, 'neither text nor data')
    t.match((await post({ ref: 'nothing' })).json(), { error: 'bad_request' }, 'HTTP: neither text nor data')
    client.send({ type: 'publish', topic: 'data', text: '', ref: 'empty' })
    t.match(await client.nextOf('error'), { code: 'too_long' }, 'an empty text without data is refused as before')
    t.equal((await app.db.query('SELECT 1 FROM messages')).length, stored, 'nothing refused was stored')
  })

  await t.test('a bot\'s messages carry bot: true', async (t) => {
    const me = await app.db.query<{ id: number }>('SELECT id FROM users WHERE name = $1', [username])
    const outcome = await app.publish({ id: me[0]?.id ?? 0, name: username, bot: true }, 'data', 'beep', undefined, { n: 1 })
    t.ok(outcome.ok)
    const message = await client.nextOf('message')
    t.same(message, { type: 'message', topic: 'data', id: message.id, author: username, text: 'beep', data: { n: 1 }, bot: true, at: message.at })
    const page = await app.inject({ url: `/api/topics/data/messages?before=${message.id + 1}&limit=1`, headers: { cookie } })
    t.same(page.json<{ messages: MessageFrame[] }>().messages, [message], 'read back with bot')
  })

  client.close()
})

function pattern (what: string, refusals: Array<[string, unknown, RegExp]>): RegExp {
  return refusals.find(([name]) => name === what)?.[2] ?? /./
}
