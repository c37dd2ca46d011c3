import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, register } from '../helpers/app.js'
import { connect } from '../helpers/chat.js'
import { sessionCookie } from '../helpers/http.js'
import { startInstances } from '../helpers/instances.js'
import type { Queryable } from '../../src/db/database.js'
import { TopicCreations } from '../../src/topic-creations.js'

// TOPIC_CREATE_RATE (issue 21): new topics one user may bring into being per hour, across all instances.

/** The database, counting the statements run through it. */
function counting (inner: Queryable): { db: Queryable, statements: () => number } {
  let statements = 0
  return {
    db: { query: async (text, params, name) => { statements++; return await inner.query(text, params, name) } },
    statements: () => statements
  }
}

const exists = async (db: Queryable, topic: string): Promise<boolean> =>
  (await db.query('SELECT 1 FROM topics WHERE name = $1', [topic])).length > 0

t.test('a topic known to exist costs no query; a new one is counted once, and past the limit refused with the wait', async (t) => {
  const app = await buildTestApp(t)
  const alice = await register(app)
  const bob = await register(app)
  const { db, statements } = counting(app.db)
  const creations = new TopicCreations({ db, perHour: 2 })
  await app.db.query("INSERT INTO topics (name) VALUES ('old')")

  t.equal(await creations.admit(alice.id, 'old', { make: false }), 'ok')
  t.equal(statements(), 1, 'an unknown topic is looked up')
  t.equal(await creations.admit(alice.id, 'old', { make: true }), 'ok')
  t.equal(await creations.admit(bob.id, 'old', { make: false }), 'ok')
  t.equal(statements(), 1, 'a topic known to exist costs nothing more')

  t.equal(await creations.admit(alice.id, 'made', { make: true }), 'ok')
  t.ok(await exists(app.db, 'made'), 'a subscribe makes the topic')
  const [first, second] = await Promise.all([
    creations.admit(alice.id, 'published', { make: false }),
    creations.admit(alice.id, 'published', { make: false })
  ])
  t.same([first, second], ['ok', 'ok'])
  t.equal(await creations.admit(alice.id, 'published', { make: false }), 'ok', 'more publishes before the first commits')
  t.notOk(await exists(app.db, 'published'), 'a publish leaves the making to its batch statement')
  t.same(await app.db.query('SELECT attempts FROM attempt_counters WHERE key = $1', [`topic-create\n${alice.id}`]), [{ attempts: 2 }],
    'each new topic counted once, however many publishes and subscribes it took')

  const refused = await creations.admit(alice.id, 'third', { make: true })
  t.ok(typeof refused === 'object' && refused.retryAfterMs > 0 && refused.retryAfterMs <= 3_600_000, 'the third in an hour: refused with the wait')
  t.notOk(await exists(app.db, 'third'), 'and not made')
  const before = statements()
  const again = await creations.admit(alice.id, 'fourth', { make: false })
  t.ok(typeof again === 'object' && again.retryAfterMs > 0)
  t.equal(statements() - before, 1, 'refused again from memory: only the look-up')
  t.equal(await creations.admit(alice.id, 'old', { make: true }), 'ok', 'an existing topic is still open to the user')
  t.equal(await creations.admit(bob.id, 'third', { make: true }), 'ok', 'another user has a limit of their own')
  t.equal(await creations.admit(alice.id, 'third', { make: false }), 'ok', 'a topic made by another is not a new one')
})

async function post (app: FastifyInstance, cookie: string, topic: string): Promise<{ statusCode: number, body: Record<string, unknown>, retryAfter: unknown }> {
  const response = await app.inject({ method: 'POST', url: `/api/topics/${topic}/messages`, headers: { cookie }, payload: { text: 'hi' } })
  return { statusCode: response.statusCode, body: response.json(), retryAfter: response.headers['retry-after'] }
}

t.test('TOPIC_CREATE_RATE over HTTP and the WebSocket: rate_limited / 429 with the wait, nothing made', async (t) => {
  const app = await buildTestApp(t, { TOPIC_CREATE_RATE: '3' })
  const { cookie } = await register(app)
  const other = await register(app)
  t.equal((await post(app, cookie, 'one')).statusCode, 201)
  t.equal((await post(app, cookie, 'two')).statusCode, 201)
  t.equal((await post(app, cookie, 'two')).statusCode, 201, 'a second message is no new topic')
  const client = await connect(app, cookie, { topic: 'three' })
  await client.nextOf('subscribed')

  client.send({ type: 'subscribe', topic: 'four' })
  const subscribeRefused = await client.nextOf('error')
  t.match(subscribeRefused, { code: 'rate_limited', topic: 'four', message: /new topics per hour/, retryAfterMs: Number })
  t.ok((subscribeRefused.retryAfterMs ?? 0) > 0)
  client.send({ type: 'publish', topic: 'five', text: 'hi', ref: 'r5' })
  t.match(await client.nextOf('error'), { code: 'rate_limited', ref: 'r5', retryAfterMs: Number })
  const overHttp = await post(app, cookie, 'six')
  t.equal(overHttp.statusCode, 429)
  t.match(overHttp.body, { error: 'rate_limited', message: String, retryAfterMs: Number })
  t.match(overHttp.retryAfter, /^\d+$/)
  t.same((await app.db.query<{ name: string }>('SELECT name FROM topics ORDER BY name')).map((row) => row.name), ['one', 'three', 'two'], 'nothing refused was made')
  t.same(await app.db.query("SELECT 1 FROM topic_presence WHERE topic = 'four'"), [], 'a refused subscribe leaves no presence')

  client.send({ type: 'publish', topic: 'three', text: 'still here', ref: 'r3' })
  t.match(await client.nextOf('ack'), { ref: 'r3', id: 1 }, 'the user\'s existing topics stay open')
  t.equal((await post(app, other.cookie, 'four')).statusCode, 201, 'another user has a limit of their own')
  t.equal((await post(app, cookie, 'four')).statusCode, 201, 'a topic another user made is no new one')
  client.send({ type: 'subscribe', topic: 'four' })
  t.match(await client.nextOf('subscribed'), { topic: 'four' })
  client.close()
})

t.test('TOPIC_CREATE_RATE holds across instances', async (t) => {
  const { instances: [a, b] } = await startInstances(t, 2, { TOPIC_CREATE_RATE: '2' })
  // The user of instance a logs in on instance b too.
  const login = await b.app.inject({ method: 'POST', url: '/api/login', payload: { username: a.user.username, password: 'correct horse' } })
  const onB = sessionCookie(login)
  t.equal((await post(a.app, a.user.cookie, 'first')).statusCode, 201)
  t.equal((await post(b.app, onB, 'second')).statusCode, 201)
  const third = await post(a.app, a.user.cookie, 'third')
  t.equal(third.statusCode, 429, 'the third new topic of the hour, on either instance')
  t.equal((await post(b.app, onB, 'fourth')).statusCode, 429)
  t.equal((await post(b.app, onB, 'first')).statusCode, 201, 'a topic made on the other instance is no new one')
  t.same((await a.app.db.query<{ name: string }>('SELECT name FROM topics ORDER BY name')).map((row) => row.name), ['first', 'second'])
})
