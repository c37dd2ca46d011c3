import t from 'tap'
import type { Database } from '../../src/db/database.js'
import { maxSinceBytes, maxSinceMessages, type MessageFrame, type ServerFrame } from '../../src/protocol.js'
import { readHistory, type History } from '../../src/message-store.js'
import { TopicBus, type Subscriber } from '../../src/topic-bus.js'
import { buildTestApp, register } from '../helpers/app.js'
import { startPostgres } from '../helpers/postgres.js'

/** The database, counting the history reads made through it (the named history statements). */
function countingHistoryReads (inner: Database): { db: Database, historyReads: () => number } {
  let reads = 0
  const db: Database = Object.create(inner, {
    query: {
      value: async <Row extends object>(text: string, params?: unknown[], name?: string): Promise<Row[]> => {
        if (name?.startsWith('canopy_history') === true) reads++
        return await inner.query<Row>(text, params, name)
      }
    }
  }) as Database
  return { db, historyReads: () => reads }
}

t.test('a catch-up of many topics reads a few at a time, and delivers each topic\'s missed message once', async (t) => {
  // On a server, where reads really run side by side (PGlite runs one at a time anyway).
  const app = await buildTestApp(t, { DATABASE_URL: (await startPostgres(t)).url })
  const { id } = await register(app)
  let reading = 0
  let mostAtOnce = 0
  // The app's database, counting the gap reads in flight.
  const db: Database = Object.create(app.db, {
    query: {
      value: async <Row extends object>(text: string, params?: unknown[], name?: string): Promise<Row[]> => {
        const isGapRead = text.includes('coalesce($3')
        if (isGapRead) mostAtOnce = Math.max(mostAtOnce, ++reading)
        try {
          return await app.db.query<Row>(text, params, name)
        } finally {
          if (isGapRead) reading--
        }
      }
    }
  }) as Database
  const bus = new TopicBus(db, app.log)
  t.teardown(async () => { await bus.close() })
  const topics = Array.from({ length: 12 }, (_, i) => `t${i}`)
  const received: ServerFrame[] = []
  let wake: (() => void) | undefined
  const subscriber: Subscriber = {
    send (frame) { received.push(Buffer.isBuffer(frame) ? JSON.parse(frame.toString()) as ServerFrame : frame); wake?.() },
    reply () {}
  }
  for (const topic of topics) await bus.subscribe(topic, subscriber, { historyLimit: 30 }, (history) => ({ type: 'subscribed', topic, history: history.messages, present: [] }))
  // Committed while this bus heard nothing: one message in each topic.
  for (const topic of topics) {
    await app.db.query('INSERT INTO topics (name, last_id) VALUES ($1, 1)', [topic])
    await app.db.query("INSERT INTO messages (topic, id, author_id, author, text) VALUES ($1, 1, $2, 'w', 'missed')", [topic, id])
  }
  bus.catchUp()
  while (received.length < topics.length) await new Promise<void>((resolve) => { wake = resolve })
  t.same(received.map((frame) => frame.type === 'message' ? `${frame.topic}#${frame.id}` : frame.type).sort(), topics.map((topic) => `${topic}#1`).sort())
  t.equal(mostAtOnce, 4, 'four gap reads at once, no more')
})

t.test('a notice (joined, left) sent while a subscriber\'s history is read follows its subscribed frame', async (t) => {
  const app = await buildTestApp(t)
  const bus = new TopicBus(app.db, app.log)
  t.teardown(async () => { await bus.close() })
  const received: string[] = []
  const subscriber: Subscriber = {
    send (frame) { received.push((Buffer.isBuffer(frame) ? JSON.parse(frame.toString()) as ServerFrame : frame).type) },
    reply (frame) { received.push(frame.type) }
  }
  let release = (): void => {}
  const alongside = new Promise<void>((resolve) => { release = resolve })
  const subscribed = bus.subscribe('room', subscriber, { historyLimit: 30, alongside }, (history) => ({ type: 'subscribed', topic: 'room', history: history.messages, present: [] }))
  bus.broadcast('room', { type: 'joined', topic: 'room', user: 'early' })
  t.same(received, [], 'nothing before the subscribed frame')
  release()
  await subscribed
  t.same(received, ['subscribed', 'joined'], 'the notice is not lost')
})

t.test('later subscribers of a topic get their history from the messages the bus keeps, the same as the table would give', async (t) => {
  const app = await buildTestApp(t)
  const { id } = await register(app)
  const { db, historyReads } = countingHistoryReads(app.db)
  const bus = new TopicBus(db, app.log, { keepRecent: 3 })
  t.teardown(async () => { await bus.close() })
  const store = async (messageId: number): Promise<MessageFrame> => {
    await app.db.query('INSERT INTO topics (name, last_id) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET last_id = $2', ['room', messageId])
    const rows = await app.db.query<{ at: Date }>('INSERT INTO messages (topic, id, author_id, author, text) VALUES ($1, $2, $3, \'w\', $4) RETURNING at', ['room', messageId, id, `m${messageId}`])
    return { type: 'message', topic: 'room', id: messageId, author: 'w', text: `m${messageId}`, at: (rows[0] as { at: Date }).at.toISOString() }
  }
  for (let i = 1; i <= 5; i++) await store(i)
  const historyOf = async (options: { historyLimit: number, since?: number }): Promise<number[]> => {
    let ids: number[] = []
    const subscriber: Subscriber = { send () {}, reply () {} }
    await bus.subscribe('room', subscriber, options, (history) => {
      ids = history.messages.map((message) => message.id)
      return { type: 'subscribed', topic: 'room', history: history.messages, present: [] }
    })
    return ids
  }
  t.same(await historyOf({ historyLimit: 3 }), [3, 4, 5], 'the first subscriber reads the table')
  t.equal(historyReads(), 1)
  // Committed and delivered through the bus, as every message is.
  bus.deliverCommitted(await store(6))
  t.same(await historyOf({ historyLimit: 3 }), [4, 5, 6], 'the next one gets the same from memory')
  t.same(await historyOf({ historyLimit: 2 }), [5, 6], 'a shorter history too')
  t.same(await historyOf({ historyLimit: 0, since: 4 }), [5, 6], 'and a catch-up the kept messages cover')
  t.same(await historyOf({ historyLimit: 0, since: 6 }), [], 'or one with nothing to catch up')
  t.equal(historyReads(), 1, 'without reading the table again')
  t.same(await historyOf({ historyLimit: 0, since: 1 }), [2, 3, 4, 5, 6], 'a catch-up from before them reads the table')
  t.same(await historyOf({ historyLimit: 5 }), [2, 3, 4, 5, 6], 'and so does a longer history')
  t.equal(historyReads(), 3)
})

t.test('a subscribe that fails after the subscriber unsubscribed and subscribed again leaves the later subscription alone', async (t) => {
  const app = await buildTestApp(t)
  let failFirst: (() => void) | undefined
  const firstRead = new Promise<void>((resolve) => { failFirst = resolve })
  let reads = 0
  const db: Database = Object.create(app.db, {
    query: {
      value: async <Row extends object>(text: string, params?: unknown[], name?: string): Promise<Row[]> => {
        if (name?.startsWith('canopy_history') === true && ++reads === 1) {
          await firstRead
          throw new Error('the database went away')
        }
        return await app.db.query<Row>(text, params, name)
      }
    }
  }) as Database
  const bus = new TopicBus(db, app.log, { keepRecent: 30 })
  t.teardown(async () => { await bus.close() })
  const received: ServerFrame[] = []
  const subscriber: Subscriber = {
    send (frame) { received.push(Buffer.isBuffer(frame) ? JSON.parse(frame.toString()) as ServerFrame : frame) },
    reply (frame) { received.push(frame) }
  }
  const subscribed = (history: { messages: MessageFrame[] }): ServerFrame => ({ type: 'subscribed', topic: 'room', history: history.messages, present: [] })
  const first = bus.subscribe('room', subscriber, { historyLimit: 30 }, subscribed)
  bus.unsubscribe('room', subscriber)
  await bus.subscribe('room', subscriber, { historyLimit: 30 }, subscribed)
  failFirst?.()
  await t.rejects(first, /went away/)
  t.ok(bus.has('room', subscriber), 'still subscribed')
  bus.deliverCommitted({ type: 'message', topic: 'room', id: 1, author: 'w', text: 'live', at: new Date().toISOString() })
  t.same(received.map((frame) => frame.type), ['subscribed', 'message'], 'and the live feed goes on')
})

t.test('a catch-up from the kept messages is cut into replies exactly as one read from the table', async (t) => {
  const app = await buildTestApp(t)
  const { id } = await register(app)
  const { db, historyReads } = countingHistoryReads(app.db)
  const bus = new TopicBus(db, app.log, { keepRecent: 5 })
  t.teardown(async () => { await bus.close() })
  // Five messages of 100,000 characters: a reply holds the third, which crosses 256 KiB, and stops there.
  await app.db.query('INSERT INTO topics (name, last_id) VALUES ($1, 5)', ['big'])
  await app.db.query("INSERT INTO messages (topic, id, author_id, author, text) SELECT 'big', g, $1, 'w', repeat('x', 100000) FROM generate_series(1, 5) g", [id])
  let fromMemory: History | undefined
  const subscriber: Subscriber = { send () {}, reply () {} }
  await bus.subscribe('big', subscriber, { historyLimit: 5 }, (history) => ({ type: 'subscribed', topic: 'big', history: history.messages, present: [] }))
  await bus.subscribe('big', { send () {}, reply () {} }, { historyLimit: 5, since: 0 }, (history) => {
    fromMemory = history
    return { type: 'subscribed', topic: 'big', history: history.messages, present: [] }
  })
  t.equal(historyReads(), 1, 'the catch-up read no table')
  const fromTable = await readHistory(app.db, 'big', { since: 0, maxSince: maxSinceMessages, maxSinceBytes })
  t.same(fromMemory?.messages.map((m) => m.id), [1, 2, 3])
  t.equal(fromMemory?.truncated, true)
  t.same(fromMemory, fromTable, 'the same messages, cut at the same place, truncated alike')
})

t.test('a topic kept for a user past the user\'s share is not kept: its histories are read from the table, as before', async (t) => {
  const app = await buildTestApp(t)
  const { id } = await register(app)
  const { db, historyReads } = countingHistoryReads(app.db)
  // Three short messages take about 470 bytes: one topic's fit in the share, two do not.
  const bus = new TopicBus(db, app.log, { keepRecent: 3, maxRecentBytesPerUser: 600 })
  t.teardown(async () => { await bus.close() })
  for (const topic of ['a', 'b']) {
    await app.db.query('INSERT INTO topics (name, last_id) VALUES ($1, 3)', [topic])
    await app.db.query("INSERT INTO messages (topic, id, author_id, author, text) SELECT $1, g, $2, 'w', 'm' || g FROM generate_series(1, 3) g", [topic, id])
  }
  const historyOf = async (topic: string, userId: number, subscriber: Subscriber = { send () {}, reply () {} }): Promise<number[]> => {
    let ids: number[] = []
    await bus.subscribe(topic, subscriber, { historyLimit: 3, userId }, (history) => {
      ids = history.messages.map((message) => message.id)
      return { type: 'subscribed', topic, history: history.messages, present: [] }
    })
    return ids
  }
  const first: Subscriber = { send () {}, reply () {} }
  t.same(await historyOf('a', 1, first), [1, 2, 3])
  t.same(await historyOf('b', 1), [1, 2, 3])
  t.equal(historyReads(), 2, 'the first subscribers read the table')
  t.ok(bus.recentBytes(1) > 0 && bus.recentBytes(1) <= 600, 'the first topic is kept for the user, within the share')
  t.equal(bus.recentBytes(), bus.recentBytes(1), 'the second is not kept at all')
  t.same(await historyOf('a', 2), [1, 2, 3])
  t.equal(historyReads(), 2, 'a later subscriber of the kept topic reads no table')
  t.same(await historyOf('b', 2), [1, 2, 3])
  t.equal(historyReads(), 3, 'one of the other reads it, the same as without the bus keeping anything')
  bus.unsubscribe('a', first)
  t.ok(bus.recentBytes(1) > 0, 'kept while the topic has subscribers here')
})

t.test('a topic\'s kept messages are let go, and the user\'s share with them, when its last subscriber here leaves', async (t) => {
  const app = await buildTestApp(t)
  const bus = new TopicBus(app.db, app.log, { keepRecent: 3 })
  t.teardown(async () => { await bus.close() })
  const subscriber: Subscriber = { send () {}, reply () {} }
  await bus.subscribe('room', subscriber, { historyLimit: 3, userId: 1 }, (history) => ({ type: 'subscribed', topic: 'room', history: history.messages, present: [] }))
  bus.deliverCommitted({ type: 'message', topic: 'room', id: 1, author: 'w', text: 'live', at: new Date().toISOString() })
  t.ok(bus.recentBytes(1) > 0)
  bus.unsubscribe('room', subscriber)
  t.equal(bus.recentBytes(), 0)
  t.equal(bus.recentBytes(1), 0)
})

t.test('a private topic reaches its members only; while its members are not known its frames wait; a catch-up waits for the hooks before it', async (t) => {
  const app = await buildTestApp(t)
  const { id } = await register(app)
  const bus = new TopicBus(app.db, app.log)
  t.teardown(async () => { await bus.close() })
  // What the access module would say: 'room' is private, with members 1 and 2.
  const members = new Set([1, 2])
  let known = true
  let learnt: (() => void) | undefined
  const served: string[] = []
  bus.filterDeliveries({
    visibility: (topic) => topic === 'room' ? (known ? 'private' : undefined) : 'public',
    mayReceive: (userId) => members.has(userId),
    learn: async () => {
      await new Promise<void>((resolve) => { learnt = resolve })
      known = true
      return 'private'
    },
    served: (topic) => { served.push(`+${topic}`) },
    unserved: (topic) => { served.push(`-${topic}`) }
  })
  const inbox = (): { subscriber: Subscriber, texts: string[], next: () => Promise<void> } => {
    const texts: string[] = []
    let wake: (() => void) | undefined
    return {
      texts,
      subscriber: {
        send (frame) {
          const parsed = Buffer.isBuffer(frame) ? JSON.parse(frame.toString()) as ServerFrame : frame
          texts.push(parsed.type === 'message' ? parsed.text : parsed.type)
          wake?.()
        },
        reply (frame) { texts.push(frame.type) }
      },
      next: async () => { await new Promise<void>((resolve) => { wake = resolve }) }
    }
  }
  const member = inbox()
  const removed = inbox()
  const subscribed = (history: History): ServerFrame => ({ type: 'subscribed', topic: 'room', history: history.messages, present: [] })
  await bus.subscribe('room', member.subscriber, { historyLimit: 5, userId: 1 }, subscribed)
  await bus.subscribe('room', removed.subscriber, { historyLimit: 5, userId: 2 }, subscribed)
  t.same(served, ['+room'], 'the filter is told the topic has subscribers here')
  const frame = (n: number): MessageFrame => ({ type: 'message', topic: 'room', id: n, author: 'w', text: `m${n}`, at: new Date().toISOString() })

  members.delete(2)
  bus.deliverCommitted(frame(1))
  bus.broadcast('room', { type: 'joined', topic: 'room', user: 'someone' })
  t.same(member.texts, ['subscribed', 'm1', 'joined'])
  t.same(removed.texts, ['subscribed'], 'no message, no notice to a subscriber who is no member')

  // The members forgotten (a LISTEN outage): the next message waits until they are read.
  known = false
  bus.deliverCommitted(frame(2))
  bus.deliverCommitted(frame(3))
  t.same(member.texts, ['subscribed', 'm1', 'joined'], 'held')
  learnt?.()
  await member.next()
  t.same(member.texts, ['subscribed', 'm1', 'joined', 'm2', 'm3'], 'released in order once read')
  t.same(removed.texts, ['subscribed'])

  // A catch-up runs its hooks first, again when one fails, then reads what was missed.
  await app.db.query("INSERT INTO topics (name, last_id) VALUES ('room', 4)")
  await app.db.query("INSERT INTO messages (topic, id, author_id, author, text) VALUES ('room', 4, $1, 'w', 'm4')", [id])
  let hookRuns = 0
  bus.beforeCatchUp(async () => {
    if (++hookRuns === 1) throw new Error('the database went away')
  })
  bus.catchUp()
  await member.next()
  t.equal(hookRuns, 2, 'the failed hook ran again before the catch-up')
  t.same(member.texts.at(-1), 'm4', 'then the missed message')
  t.same(removed.texts, ['subscribed'])

  bus.unsubscribe('room', member.subscriber)
  bus.unsubscribe('room', removed.subscriber)
  t.same(served, ['+room', '-room'], 'and that it has none')
})
