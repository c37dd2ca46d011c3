import t from 'tap'
import type { FastifyBaseLogger } from 'fastify'
import { openDatabase } from '../../src/db/open.js'
import type { ErrorCode, MessageFrame } from '../../src/protocol.js'
import { Access } from '../../src/access.js'
import { Publisher, type PublisherOptions } from '../../src/publisher.js'
import { migratedDataDir } from '../helpers/app.js'

// The publish path on its own, on PGlite: no app, no socket, no topic bus.

const quiet = { info () {}, warn () {}, error () {}, debug () {}, child () { return quiet } } as unknown as FastifyBaseLogger

t.test('the publisher', async (t) => {
  const db = await openDatabase({ databaseUrl: undefined, dataDir: await migratedDataDir(t) })
  t.teardown(async () => { await db.close() })
  await db.migrate()
  const [row] = await db.query<{ id: number }>("INSERT INTO users (name, password_hash) VALUES ('ann', 'x') RETURNING id")
  const ann = { id: row?.id ?? 0, name: 'ann' }

  const publisherWith = (options: Partial<PublisherOptions> = {}): { publisher: Publisher, handedOn: MessageFrame[], counted: Array<'acked' | ErrorCode> } => {
    const handedOn: MessageFrame[] = []
    const counted: Array<'acked' | ErrorCode> = []
    const publisher = new Publisher({
      db,
      log: quiet,
      notify: undefined,
      busReady: () => true,
      access: new Access({ db }),
      onCommitted: (message) => { handedOn.push(message) },
      onPublished: (result) => { counted.push(result) },
      publishRatePerSecond: 1000,
      publishBurst: 1000,
      topicCreatesPerHour: 100,
      ...options
    })
    t.teardown(() => { publisher.stop() })
    return { publisher, handedOn, counted }
  }

  await t.test('a queued publish resolves at once, then its outcome; the message reaches the bus after the outcome', async (t) => {
    const { publisher, handedOn, counted } = publisherWith()
    const queued = await publisher.queue(ann, 'general', 'hello', 'r1')
    if (!queued.queued) throw new Error('refused')
    t.equal(publisher.inFlightCount, 1, 'in flight until answered')
    const outcome = await queued.outcome
    t.match(outcome, { ok: true, duplicate: false, message: { topic: 'general', author: 'ann', text: 'hello' } })
    t.same(handedOn, [], 'not handed to the bus yet while the outcome\'s reactions run')
    await publisher.allAnswered()
    t.equal(publisher.inFlightCount, 0)
    t.same(handedOn.map((m) => m.text), ['hello'], 'then handed to the bus, once')
    t.same(counted, ['acked'])
  })

  await t.test('a ref used before answers with the first message, which does not reach the bus again', async (t) => {
    const { publisher, handedOn } = publisherWith()
    const first = await publisher.publish(ann, 'general', 'once', 'r2')
    const again = await publisher.publish(ann, 'general', 'once', 'r2')
    t.match(again, { ok: true, duplicate: true })
    t.same(first.ok && again.ok ? again.message.id : -1, first.ok ? first.message.id : -2, 'the first message\'s id')
    await publisher.allAnswered()
    t.same(handedOn.map((m) => m.text), ['once'])
  })

  await t.test('while the topic bus is not ready, a publish is refused unavailable and nothing is stored', async (t) => {
    const { publisher, handedOn, counted } = publisherWith({ busReady: () => false })
    t.match(await publisher.publish(ann, 'general', 'lost', 'r3'), { ok: false, code: 'unavailable' })
    await publisher.allAnswered()
    t.same(handedOn, [])
    t.same(counted, ['unavailable'])
    const [stored] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM messages WHERE text = 'lost'")
    t.equal(stored?.n, 0)
  })

  await t.test('over the user\'s rate a publish is refused before anything is queued, with its wait', async (t) => {
    // A user of its own: the rate is kept in the database, per user.
    const [row] = await db.query<{ id: number }>("INSERT INTO users (name, password_hash) VALUES ('bob', 'x') RETURNING id")
    const bob = { id: row?.id ?? 0, name: 'bob' }
    const { publisher, counted } = publisherWith({ publishRatePerSecond: 1, publishBurst: 1 })
    t.match(await publisher.publish(bob, 'general', 'one', 'r4'), { ok: true })
    const refused = await publisher.queue(bob, 'general', 'two', 'r5')
    t.match(refused, { queued: false, refusal: { ok: false, code: 'rate_limited' } })
    t.ok(!refused.queued && (refused.refusal.retryAfterMs ?? 0) > 0, 'with a wait')
    t.same(counted, ['acked', 'rate_limited'])
  })
})
