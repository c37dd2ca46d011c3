import t from 'tap'
import { sql } from 'drizzle-orm'
import { buildTestApp, register } from '../helpers/app.js'
import { forEachEngine } from '../helpers/postgres.js'
import { findByRefs, readHistory, readPage, readRange, storeBatch, type PendingMessage } from '../../src/message-store.js'

// data and bot through the message store (src/message-store.ts), and canopy_publish's rules
// (migrations/0010_canopy_publish.sql), on both engines.

const data = { s: 'ünïcödé ✓ 🌲', n: [1, -2.5, 1e21, 0], nested: { deep: [{ a: true, b: null }], empty: {} } }

forEachEngine(t, async (t, env) => {
  const app = await buildTestApp(t, env)
  const ann = await register(app, `ann${process.pid}`)
  const at = new Date()
  const pending = (text: string, extra: Partial<PendingMessage> = {}): PendingMessage =>
    ({ topic: 'store', authorId: ann.id, author: ann.username, text, ref: undefined, at, ...extra })

  await t.test('data and bot round trip through the store, history, since, ranges, pages and refs', async (t) => {
    const stored = await storeBatch(app.db, [
      pending('plain'),
      pending('', { data, ref: 'with-data' }),
      pending('by a bot', { bot: true }),
      pending('both', { data: 'a string', bot: true }),
      pending('an array', { data: [1, 'two', [3]] })
    ])
    const iso = at.toISOString()
    const expected = [
      { type: 'message', topic: 'store', id: 1, author: ann.username, text: 'plain', at: iso },
      { type: 'message', topic: 'store', id: 2, author: ann.username, text: '', data, at: iso },
      { type: 'message', topic: 'store', id: 3, author: ann.username, text: 'by a bot', bot: true, at: iso },
      { type: 'message', topic: 'store', id: 4, author: ann.username, text: 'both', data: 'a string', bot: true, at: iso },
      { type: 'message', topic: 'store', id: 5, author: ann.username, text: 'an array', data: [1, 'two', [3]], at: iso }
    ]
    t.same(stored, expected, 'as stored')
    t.notOk('data' in (stored[0] ?? {}), 'no data key on a plain message')
    t.notOk('bot' in (stored[0] ?? {}), 'no bot key on a person\'s message')
    t.same((await readHistory(app.db, 'store', { limit: 10 })).messages, expected, 'history')
    t.same((await readHistory(app.db, 'store', { since: 1, maxSince: 10, maxSinceBytes: 1_000_000 })).messages, expected.slice(1), 'since')
    t.same(await readRange(app.db, 'store', 1, 3, 10), expected.slice(1, 3), 'range')
    t.same(await readPage(app.db, 'store', 5, 2), expected.slice(2, 4), 'page')
    const plainRead = (await readPage(app.db, 'store', 2, 1))[0]
    t.notOk(plainRead !== undefined && ('data' in plainRead || 'bot' in plainRead), 'read back, a plain message has neither key')
    t.same((await findByRefs(app.db, [{ authorId: ann.id, ref: 'with-data' }])).get(`${ann.id}\nwith-data`), expected[1], 'by ref')
  })

  await t.test('since with data: the byte budget counts data, and cuts', async (t) => {
    const big = { blob: 'x'.repeat(10_000) }
    await storeBatch(app.db, [pending('', { topic: 'budget', data: big }), pending('', { topic: 'budget', data: big }), pending('', { topic: 'budget', data: big })])
    const history = await readHistory(app.db, 'budget', { since: 0, maxSince: 10, maxSinceBytes: 15_000 })
    t.same(history.messages.map((m) => m.id), [1, 2], 'the message that crosses the budget is the last one in')
    t.equal(history.truncated, true)
    t.same(history.messages[0]?.data, big)
  })

  await t.test('canopy_publish stores a message with the next id, data and bot, and refuses what breaks the rules', async (t) => {
    const publish = async (topic: string, author: string, text: string | null, json: string | null, ref: string | null): Promise<number> => {
      const rows = await app.db.query<{ id: number }>('SELECT canopy_publish($1, $2, $3, $4::jsonb, $5) AS id', [topic, author, text, json, ref])
      return Number(rows[0]?.id)
    }
    t.equal(await publish('sqlroom', ann.username.toUpperCase(), 'from sql', null, null), 1, 'the author by name, whatever its case')
    t.equal(await publish('sqlroom', ann.username, null, JSON.stringify(data), 'r1'), 2, 'data alone')
    t.equal(await publish('sqlroom', ann.username, 'again', null, 'r1'), 2, 'a repeated ref: the first id, nothing stored')
    await app.db.query("UPDATE users SET kind = 'bot', password_hash = null WHERE id = $1", [ann.id])
    t.equal(await publish('sqlroom', ann.username, 'beep', null, null), 3)
    await app.db.query("UPDATE users SET kind = 'password' WHERE id = $1", [ann.id])
    const history = await readHistory(app.db, 'sqlroom', { limit: 10 })
    t.same(history.messages.map(({ id, author, text, data, bot }) => ({ id, author, text, data, bot })), [
      { id: 1, author: ann.username, text: 'from sql', data: undefined, bot: undefined },
      { id: 2, author: ann.username, text: '', data, bot: undefined },
      { id: 3, author: ann.username, text: 'beep', data: undefined, bot: true }
    ])
    t.equal(history.lastId, 3)
    const refusals: Array<[string, string, string | null, string | null, RegExp]> = [
      ['Bad Topic', ann.username, 'x', null, /no topic name/],
      ['sqlroom', 'nobody-at-all', 'x', null, /no user or bot named/],
      ['sqlroom', ann.username, null, null, /needs text, data or both/],
      ['sqlroom', ann.username, '   ', null, /needs text, data or both/],
      ['sqlroom', ann.username, 'x', 'null', /but null/],
      ['sqlroom', ann.username, 'x'.repeat(2001), null, /over 2000 characters/],
      ['sqlroom', ann.username, null, JSON.stringify('x'.repeat(16_383)), /over 16384/],
      ['dm.1-2', ann.username, 'x', null, /no direct-message topic/]
    ]
    for (const [topic, author, text, json, pattern] of refusals) {
      await t.rejects(publish(topic, author, text, json, null), pattern, `${topic} ${author} ${String(text).slice(0, 10)} ${String(json).slice(0, 10)}`)
    }
    t.equal(await publish('sqlroom', ann.username, null, JSON.stringify('x'.repeat(16_382)), null), 4, '16384 bytes of JSON exactly')
    await app.db.query("INSERT INTO topics (name, visibility) VALUES ('secret', 'private')")
    await t.rejects(publish('secret', ann.username, 'x', null, null), /private and .* is not a member/)
    await app.db.query("INSERT INTO topic_members (topic, user_id, role) VALUES ('secret', $1, 'owner')", [ann.id])
    t.equal(await publish('secret', ann.username, 'in', null, null), 1, 'a member publishes')
  })

  await t.test('canopy_publish in a transaction that rolls back takes no id', async (t) => {
    await t.rejects(app.db.orm.transaction(async (tx) => {
      await tx.execute(sql`SELECT canopy_publish('gapless', ${ann.username}, 'lost', NULL, NULL)`)
      throw new Error('rolled back')
    }), /rolled back/)
    await app.db.orm.transaction(async (tx) => {
      await tx.execute(sql`SELECT canopy_publish('gapless', ${ann.username}, 'kept 1', NULL, NULL)`)
      await tx.execute(sql`SELECT canopy_publish('gapless', ${ann.username}, 'kept 2', NULL, NULL)`)
    })
    const history = await readHistory(app.db, 'gapless', { limit: 10 })
    t.same(history.messages.map((m) => [m.id, m.text]), [[1, 'kept 1'], [2, 'kept 2']], 'gapless')
  })
})
