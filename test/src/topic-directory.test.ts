import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, register } from '../helpers/app.js'
import { connect } from '../helpers/chat.js'
import { sessionCookie } from '../helpers/http.js'
import { startInstances } from '../helpers/instances.js'
import { migrationsFolder, type Queryable } from '../../src/db/database.js'
import { listTopics } from '../../src/topic-directory.js'

// GET /api/topics and PUT /api/topics/:topic/read (issue 16).

interface Summary { name: string, lastId: number, lastAt: string, unread: number, visibility: string, kind?: string, members?: string[] }

async function publish (app: FastifyInstance, cookie: string, topic: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const response = await app.inject({ method: 'POST', url: `/api/topics/${topic}/messages`, headers: { cookie }, payload: { text: `${topic} ${i}` } })
    if (response.statusCode !== 201) throw new Error(`publish: ${response.statusCode} ${response.body}`)
  }
}

async function topics (app: FastifyInstance, cookie: string): Promise<Summary[]> {
  const response = await app.inject({ url: '/api/topics', headers: { cookie } })
  if (response.statusCode !== 200) throw new Error(`GET /api/topics: ${response.statusCode}`)
  return response.json<{ topics: Summary[] }>().topics
}

const read = async (app: FastifyInstance, cookie: string, topic: string, id: unknown): Promise<number> =>
  (await app.inject({ method: 'PUT', url: `/api/topics/${topic}/read`, headers: { cookie }, payload: { id } })).statusCode

t.test('the directory: most recently active first, numbers for ids and counts, unread from the read position', async (t) => {
  const app = await buildTestApp(t, { PUBLISH_RATE: '1000', PUBLISH_BURST: '1000' })
  const writer = await register(app)
  const reader = await register(app)
  await publish(app, writer.cookie, 'older', 3)
  await publish(app, writer.cookie, 'newer', 5)
  const listed = await topics(app, reader.cookie)
  t.same(listed.map(({ name, lastId, unread }) => ({ name, lastId, unread })), [
    { name: 'newer', lastId: 5, unread: 5 },
    { name: 'older', lastId: 3, unread: 3 }
  ], 'every topic with messages, joined or not, newest first; all unread when never read')
  t.ok(listed.every((topic) => !Number.isNaN(Date.parse(topic.lastAt))), 'lastAt is a time')
  t.ok(Date.parse(listed[0]?.lastAt ?? '') >= Date.parse(listed[1]?.lastAt ?? ''))

  t.equal(await read(app, reader.cookie, 'newer', 2), 204)
  t.equal((await topics(app, reader.cookie)).find((topic) => topic.name === 'newer')?.unread, 3)
  t.equal(await read(app, reader.cookie, 'newer', 1), 204, 'a lower id answers 204…')
  t.equal((await topics(app, reader.cookie)).find((topic) => topic.name === 'newer')?.unread, 3, '…and changes nothing')
  t.equal(await read(app, reader.cookie, 'newer', 1_000_000), 204)
  t.equal((await topics(app, reader.cookie)).find((topic) => topic.name === 'newer')?.unread, 0, 'an id past the last counts as the last')
  await publish(app, writer.cookie, 'newer', 2)
  t.equal((await topics(app, reader.cookie)).find((topic) => topic.name === 'newer')?.unread, 2, 'so later messages are unread')
  t.equal((await topics(app, writer.cookie)).find((topic) => topic.name === 'newer')?.unread, 7, 'read positions are per user')

  for (const bad of [0, -1, 1.5, 'abc', '5', true, [7], null, 2 ** 53]) t.equal(await read(app, reader.cookie, 'newer', bad), 400, `id ${JSON.stringify(bad)}: 400 (a JSON body is not coerced)`)
  const numberText = await app.inject({ method: 'POST', url: '/api/topics/newer/messages', headers: { cookie: writer.cookie }, payload: { text: 123 } })
  t.equal(numberText.statusCode, 400, 'a number is not a text')
  t.equal(await read(app, reader.cookie, 'Bad Topic', 1), 400, 'a bad topic: 400')
  t.equal((await app.inject({ url: '/api/topics' })).statusCode, 401, 'no session: 401')
  t.equal((await app.inject({ method: 'PUT', url: '/api/topics/newer/read', payload: { id: 1 } })).statusCode, 401)
})

t.test('at most 100 topics, and unread stops at 1000', async (t) => {
  const app = await buildTestApp(t)
  const { cookie, id } = await register(app)
  await app.db.query('INSERT INTO topics (name, last_id, last_at) SELECT \'bulk-\' || g, 1, now() - make_interval(secs => g) FROM generate_series(1, 105) g')
  await app.db.query(`INSERT INTO messages (topic, id, author_id, author, text, at)
    SELECT 'bulk-' || g, 1, $1, 'w', 'x', now() - make_interval(secs => g) FROM generate_series(1, 105) g`, [id])
  await app.db.query("INSERT INTO topics (name, last_id) VALUES ('busy', 1500)")
  await app.db.query("INSERT INTO messages (topic, id, author_id, author, text, at) SELECT 'busy', g, $1, 'w', 'x', now() FROM generate_series(1, 1500) g", [id])
  const listed = await topics(app, cookie)
  t.equal(listed.length, 100, 'at most 100')
  t.same(listed.slice(0, 3).map((topic) => topic.name), ['busy', 'bulk-1', 'bulk-2'], 'by lastAt')
  t.equal(listed[0]?.unread, 1000, 'unread is capped at 1000')
})

t.test('read positions follow the user to another device on another instance', async (t) => {
  const { instances: [a, b] } = await startInstances(t, 2)
  await publish(a.app, a.user.cookie, 'shared', 4)
  // The user of instance b logs in again on instance a: a second device.
  const login = await a.app.inject({ method: 'POST', url: '/api/login', payload: { username: b.user.username, password: 'correct horse' } })
  const otherDevice = sessionCookie(login)
  t.equal((await topics(b.app, b.user.cookie)).find((topic) => topic.name === 'shared')?.unread, 4)
  t.equal(await read(a.app, otherDevice, 'shared', 3), 204)
  t.equal((await topics(b.app, b.user.cookie)).find((topic) => topic.name === 'shared')?.unread, 1, 'read on one device and instance, seen on the other')
})

/** A node of EXPLAIN (ANALYZE, FORMAT JSON)'s plan. */
interface PlanNode {
  'Relation Name'?: string
  'Actual Rows'?: number
  'Actual Loops'?: number
  'Rows Removed by Filter'?: number
  'Rows Removed by Index Recheck'?: number
  Plans?: PlanNode[]
}

/** Rows every scan of a table or index in the plan read, kept or filtered out, over all its loops. */
function rowsRead (node: PlanNode): number {
  const own = node['Relation Name'] === undefined
    ? 0
    : ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0)) * (node['Actual Loops'] ?? 1)
  return own + (node.Plans ?? []).reduce((sum, child) => sum + rowsRead(child), 0)
}

/** The rows GET /api/topics's statement reads for this user: run again under EXPLAIN ANALYZE. */
async function rowsReadByListing (db: Queryable, userId: number): Promise<number> {
  let statement: { text: string, params: unknown[] | undefined } | undefined
  await listTopics({ query: async (text, params) => { statement = { text, params }; return [] } }, userId)
  if (statement === undefined) throw new Error('listTopics ran no statement')
  const [row] = await db.query<{ 'QUERY PLAN': unknown }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${statement.text}`, statement.params)
  const plan = row?.['QUERY PLAN']
  const [explained] = (typeof plan === 'string' ? JSON.parse(plan) : plan) as Array<{ Plan: PlanNode }>
  if (explained === undefined) throw new Error('no plan')
  return rowsRead(explained.Plan)
}

/**
 * `count` topics named prefix-N with one message each, from a few statements (generate_series),
 * public unless said; `ago` seconds before now and older.
 */
async function addTopics (db: Queryable, authorId: number, prefix: string, count: number, options: { visibility?: string, agoSeconds?: number } = {}): Promise<void> {
  const { visibility = 'public', agoSeconds = 0 } = options
  await db.query(`INSERT INTO topics (name, last_id, last_at, visibility)
    SELECT $1 || g, 1, now() - make_interval(secs => $3 + g), $4 FROM generate_series(1, $2::int) g`, [prefix, count, agoSeconds, visibility])
  await db.query(`INSERT INTO messages (topic, id, author_id, author, text, at)
    SELECT $1 || g, 1, $3, 'w', 'x', now() - make_interval(secs => $4 + g) FROM generate_series(1, $2::int) g`, [prefix, count, authorId, agoSeconds])
  await db.query('ANALYZE')
}

t.test('GET /api/topics reads as many rows with 100,000 topics as with 1,000', async (t) => {
  const app = await buildTestApp(t)
  const { cookie, id } = await register(app)
  await addTopics(app.db, id, 'small-', 1000)
  // The user has joined a few topics: they are read too.
  await app.db.query("INSERT INTO read_positions (user_id, topic, last_read_id) VALUES ($1, 'small-1', 1), ($1, 'small-500', 1), ($1, 'small-1000', 0)", [id])
  const small = await rowsReadByListing(app.db, id)
  await addTopics(app.db, id, 'large-', 99_000)
  const large = await rowsReadByListing(app.db, id)
  t.comment(`rows read: ${small} with 1,000 topics, ${large} with 100,000`)
  t.ok(large <= small, `no more rows read with 100,000 topics (${large}) than with 1,000 (${small})`)
  t.ok(large < 1000, `a bounded number of rows, not the topics (${large})`)
  const listed = await topics(app, cookie)
  t.same(listed.slice(0, 3).map((topic) => topic.name).sort(), ['small-1', 'small-1000', 'small-500'], 'the joined topics first')
  t.equal(listed.length, 103, 'then 100 others')
})

t.test('GET /api/topics reads no private topic it does not list: as many rows with 100,000 more recently active as with none', async (t) => {
  const app = await buildTestApp(t)
  const { cookie, id } = await register(app)
  await addTopics(app.db, id, 'public-', 1000, { agoSeconds: 200_000 })
  // The user is a member of a few private topics, with messages or not: they are read too.
  await addTopics(app.db, id, 'mine-', 3, { visibility: 'private', agoSeconds: 100_000 })
  await app.db.query("INSERT INTO topics (name, visibility) VALUES ('mine-quiet', 'private')")
  await app.db.query("INSERT INTO topic_members (topic, user_id, role) SELECT name, $1, 'member' FROM topics WHERE name LIKE 'mine-%'", [id])
  const before = await rowsReadByListing(app.db, id)
  // Others' private topics, every one of them more recently active than any public topic.
  await addTopics(app.db, id, 'private-', 99_000, { visibility: 'private' })
  const after = await rowsReadByListing(app.db, id)
  t.comment(`rows read: ${before} without others' private topics, ${after} with 99,000 of them`)
  t.ok(after <= before, `no more rows read with 99,000 private topics (${after}) than without (${before})`)
  t.ok(after < 1000, `a bounded number of rows (${after})`)
  const listed = await topics(app, cookie)
  t.same(listed.slice(0, 4).map((topic) => topic.name).sort(), ['mine-1', 'mine-2', 'mine-3', 'mine-quiet'], 'the user\'s private topics first')
  t.ok(listed.slice(0, 4).every((topic) => topic.visibility === 'private'))
  t.equal(listed.length, 104, 'then 100 others')
  t.ok(listed.slice(4).every((topic) => topic.name.startsWith('public-') && topic.visibility === 'public'), 'the others: public topics only')
})

t.test('a user\'s joined topics come first, and another user\'s new topics never push them out', async (t) => {
  const app = await buildTestApp(t, { PUBLISH_RATE: '1000', PUBLISH_BURST: '1000', TOPIC_CREATE_RATE: '1000' })
  const bob = await register(app)
  const mallory = await register(app)
  for (const topic of ['general', 'ops', 'release']) {
    await publish(app, bob.cookie, topic, 2)
    t.equal(await read(app, bob.cookie, topic, 1), 204)
  }
  // Joined by being subscribed now, and no message yet: listed all the same.
  const client = await connect(app, bob.cookie, { topic: 'quiet' })
  await client.nextOf('subscribed')
  t.teardown(() => { client.close() })
  // Another user makes more new topics than the directory lists, all more recently active.
  for (let i = 0; i < 110; i++) await publish(app, mallory.cookie, `spam-${i}`, 1)

  const listed = await topics(app, bob.cookie)
  t.same(listed.slice(0, 4).map((topic) => topic.name).sort(), ['general', 'ops', 'quiet', 'release'], 'bob\'s own topics first, none pushed out')
  t.same(listed.slice(0, 4).map((topic) => topic.name), ['quiet', 'release', 'ops', 'general'], 'most recently active first')
  t.match(listed.find((topic) => topic.name === 'quiet'), { lastId: 0, unread: 0 }, 'a joined topic without messages')
  t.match(listed.find((topic) => topic.name === 'ops'), { lastId: 2, unread: 1 }, 'read up to 1 of 2')
  t.equal(listed.length, 104, 'then 100 others')
  t.ok(listed.slice(4).every((topic) => topic.name.startsWith('spam-')), 'the others: the most recently active')
  t.equal(new Set(listed.map((topic) => topic.name)).size, listed.length, 'none listed twice')
  const ofMallory = await topics(app, mallory.cookie)
  t.equal(ofMallory.length, 100, 'mallory joined nothing: 100 others')
  t.equal(ofMallory[0]?.name, 'spam-109')
})

t.test('PUT …/read on a topic that does not exist is 404 and stores nothing', async (t) => {
  const app = await buildTestApp(t)
  const { cookie } = await register(app)
  for (let i = 0; i < 5; i++) {
    const response = await app.inject({ method: 'PUT', url: `/api/topics/nowhere-${i}/read`, headers: { cookie }, payload: { id: 1 } })
    t.equal(response.statusCode, 404, `nowhere-${i}`)
    t.match(response.json(), { error: 'not_found', message: String })
  }
  t.same(await app.db.query('SELECT * FROM read_positions'), [], 'no read position stored')
  t.same(await app.db.query("SELECT * FROM topics WHERE name LIKE 'nowhere-%'"), [], 'no topic made')
  // A topic with a subscriber and no message exists.
  const client = await connect(app, cookie, { topic: 'empty-room' })
  await client.nextOf('subscribed')
  t.equal(await read(app, cookie, 'empty-room', 5), 204, 'a topic with subscribers exists')
  client.close()
})

t.test('GET /api/topics is budgeted per user', async (t) => {
  const app = await buildTestApp(t)
  const { cookie } = await register(app)
  let response
  let reads = 0
  do {
    response = await app.inject({ url: '/api/topics', headers: { cookie } })
    reads++
  } while (response.statusCode === 200 && reads < 500)
  t.equal(response.statusCode, 429, `429 after ${reads} reads`)
  t.match(response.json(), { error: 'rate_limited', message: String, retryAfterMs: Number })
  t.match(response.headers['retry-after'], /^\d+$/)
  const other = await register(app)
  t.equal((await app.inject({ url: '/api/topics', headers: { cookie: other.cookie } })).statusCode, 200, 'another user is not held back')
})

t.test('migration 0005 backfills last_at from each topic\'s last message, and makes the rows of topics with subscribers', async (t) => {
  const app = await buildTestApp(t)
  const { id } = await register(app)
  // As before the migration: topics whose last_at says nothing (the column's default), one with subscribers and no row.
  await app.db.query("INSERT INTO topics (name, last_id, last_at) VALUES ('old', 2, now()), ('older', 1, now())")
  await app.db.query(`INSERT INTO messages (topic, id, author_id, author, text, at) VALUES
    ('old', 1, $1, 'w', 'x', '2020-01-01T00:00:00Z'), ('old', 2, $1, 'w', 'x', '2020-01-02T00:00:00Z'), ('older', 1, $1, 'w', 'x', '2019-05-05T00:00:00Z')`, [id])
  await app.db.query("INSERT INTO topic_presence (topic, user_id, user_name, instances) VALUES ('occupied', $1, 'w', 1), ('abandoned', $1, 'w', 0)", [id])
  // 0007 renamed the table 0005 read: the statements run on today's schema.
  const migration = readFileSync(join(migrationsFolder, '0005_topics_last_at.sql'), 'utf8').replaceAll('"topic_members"', '"topic_presence"').split('--> statement-breakpoint')
  for (const statement of migration.filter((text) => /^\s*(--.*\n)*\s*(UPDATE|INSERT)/.test(text))) await app.db.query(statement)
  const rows = await app.db.query<{ name: string, last_id: number, last_at: Date }>('SELECT name, last_id, last_at FROM topics ORDER BY name')
  t.same(rows.map((row) => [row.name, row.last_id, row.name === 'occupied' ? 'now' : row.last_at.toISOString()]), [
    ['occupied', 0, 'now'],
    ['old', 2, '2020-01-02T00:00:00.000Z'],
    ['older', 1, '2019-05-05T00:00:00.000Z']
  ])
})
