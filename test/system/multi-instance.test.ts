import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { connect, type ChatClient } from '../helpers/chat.js'
import { startInstances } from '../helpers/instances.js'
import { unhurriedCommits } from '../helpers/app.js'
import { CloseCode, type MessageFrame } from '../../src/protocol.js'

/** Collects `count` messages of a topic from a client, failing on a duplicate id. */
async function collect (t: Test, client: ChatClient, count: number): Promise<MessageFrame[]> {
  const messages: MessageFrame[] = []
  const ids = new Set<number>()
  while (messages.length < count) {
    const frame = await client.nextOf('message')
    if (ids.has(frame.id)) t.fail(`message ${frame.id} delivered twice`)
    ids.add(frame.id)
    messages.push(frame)
  }
  return messages
}

/** Publishes and resends with the same ref on `unavailable`, as a client must; returns the acked id. */
async function publishUntilAcked (client: ChatClient, app: FastifyInstance, topic: string, text: string, ref: string): Promise<number> {
  for (;;) {
    client.send({ type: 'publish', topic, text, ref })
    for (;;) {
      const frame = await client.next()
      if (frame.type === 'ack' && frame.ref === ref) return frame.id
      if (frame.type === 'error' && frame.ref === ref) {
        if (frame.code !== 'unavailable') throw new Error(`publish ${ref}: ${frame.code}`)
        await app.topicBus.whenReady()
        break
      }
    }
  }
}

t.test('instances on one Postgres act as one', async (t) => {
  const { instances: [{ app: a, user: alice }, { app: b, user: bob }, { app: c, user: carol }] } = await startInstances(t, 3, {}, unhurriedCommits)

  await t.test('a message published on one instance reaches subscribers on all, with presence', async (t) => {
    const onA = await connect(a, alice.cookie, { topic: 'across' })
    await onA.nextOf('subscribed')
    const onB = await connect(b, bob.cookie, { topic: 'across' })
    await onB.nextOf('subscribed')
    t.same(await onA.nextOf('joined'), { type: 'joined', topic: 'across', user: bob.username }, 'joined crosses instances')
    const onC = await connect(c, bob.cookie, { topic: 'across' })
    await onC.nextOf('subscribed')

    onA.send({ type: 'publish', topic: 'across', text: 'hello from a', ref: 'x-1' })
    const ack = await onA.nextOf('ack')
    const expected = { type: 'message', topic: 'across', id: ack.id, author: alice.username, text: 'hello from a', at: ack.at }
    t.same(await onA.nextOf('message'), expected)
    t.same(await onB.nextOf('message'), expected)
    t.same(await onC.nextOf('message'), expected)

    onA.socket.terminate()
    t.same(await onB.nextOf('left'), { type: 'left', topic: 'across', user: alice.username }, 'left crosses instances')
    onB.close()
    onC.close()
  })

  await t.test('a login on one instance and its logout close sockets on another with 4401', async (t) => {
    const onC = await connect(c, alice.cookie, { topic: 'logout' })
    await onC.nextOf('subscribed')
    t.equal((await a.inject({ method: 'POST', url: '/api/logout', headers: { cookie: alice.cookie } })).statusCode, 204)
    t.equal((await onC.closed).code, CloseCode.loggedOut)
  })

  await t.test('a message of 25 KB crosses instances intact', async (t) => {
    const onA = await connect(a, carol.cookie, { topic: 'big' })
    const onB = await connect(b, bob.cookie, { topic: 'big' })
    await onA.nextOf('subscribed')
    await onB.nextOf('subscribed')
    // 25 KB in UTF-8, with characters of every width and some that JSON escapes.
    const text = Array.from({ length: 3000 }, (_, i) => ['aé😀"\\\n', 'plain text '][i % 2]).join('')
    t.ok(Buffer.byteLength(text) >= 25_000, `${Buffer.byteLength(text)} bytes`)
    const response = await a.inject({ method: 'POST', url: '/api/topics/big/messages', headers: { cookie: carol.cookie }, payload: { text, ref: 'big-1' } })
    t.equal(response.statusCode, 201, response.body)
    t.same(await onB.nextOf('message'), response.json().message)
    t.equal((await onB.queued).length, 0)
    onA.close()
    onB.close()
  })
})

t.test('the publish rate limit is per user across instances', async (t) => {
  const { instances: [{ app: a, user: { cookie } }, { app: b }] } = await startInstances(t, 2, { PUBLISH_RATE: '0.001', PUBLISH_BURST: '4' })
  const post = async (app: FastifyInstance, ref: string) =>
    (await app.inject({ method: 'POST', url: '/api/topics/limits/messages', headers: { cookie }, payload: { text: ref, ref } })).statusCode
  t.same([await post(a, 'a1'), await post(b, 'b1'), await post(a, 'a2'), await post(b, 'b2')], [201, 201, 201, 201], 'the burst, spent on two instances')
  t.same([await post(a, 'a3'), await post(b, 'b3')], [429, 429], 'then refused on both')
  t.equal((await a.db.query('SELECT 1 FROM messages')).length, 4)
})

t.test('200 concurrent publishes from each of two instances: every subscriber gets all, once, in order', async (t) => {
  const { instances: [{ app: a, user: alice }, { app: b, user: bob }] } = await startInstances(t, 2, {}, unhurriedCommits)
  const subscribers = [await connect(a, bob.cookie, { topic: 'load' }), await connect(b, alice.cookie, { topic: 'load' })]
  for (const s of subscribers) await s.nextOf('subscribed')
  const publishers = [await connect(a, alice.cookie, { topic: 'quiet' }), await connect(b, bob.cookie, { topic: 'quiet' })]
  for (const p of publishers) await p.nextOf('subscribed')

  publishers.forEach((publisher, p) => {
    for (let i = 0; i < 200; i++) publisher.send({ type: 'publish', topic: 'load', text: `${p}:${i}`, ref: `${p}-${i}` })
  })
  const received = await Promise.all(subscribers.map(async (s) => await collect(t, s, 400)))
  const [first, second] = received as [MessageFrame[], MessageFrame[]]
  t.same(first.map((m) => m.id), Array.from({ length: 400 }, (_, i) => i + 1), 'ids 1…400 in order on one instance')
  t.same(second, first, 'the same messages in the same order on the other')
  for (const p of [0, 1]) {
    t.same(first.filter((m) => m.text.startsWith(`${p}:`)).map((m) => m.text), Array.from({ length: 200 }, (_, i) => `${p}:${i}`), `publisher ${p} in its order`)
  }
  const acks = await Promise.all(publishers.map(async (publisher) => {
    let n = 0
    while (n < 200) { await publisher.nextOf('ack'); n++ }
    return n
  }))
  t.same(acks, [200, 200])
  const rows = await a.db.query<{ n: number }>("SELECT count(*)::int AS n FROM messages WHERE topic = 'load'")
  t.equal(rows[0]?.n, 400)
})

t.test('LISTEN connections killed while messages are published: nothing lost, nothing twice', async (t) => {
  const { postgres, instances: [{ app: a, user: alice }, { app: b, user: bob }] } = await startInstances(t, 2, {}, unhurriedCommits)
  const watchers = [await connect(a, bob.cookie, { topic: 'kill' }), await connect(b, alice.cookie, { topic: 'kill' })]
  for (const w of watchers) await w.nextOf('subscribed')
  const publishers = [await connect(a, alice.cookie, { topic: 'quiet' }), await connect(b, bob.cookie, { topic: 'quiet' })]
  for (const p of publishers) await p.nextOf('subscribed')

  const perPublisher = 60
  const killed = await postgres.admin("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'canopy-bus' AND datname = current_database()")
  t.equal(killed.rows[0].n, 2, 'one canopy-bus LISTEN connection per instance')
  const publishing = Promise.all(publishers.map(async (publisher, p) => {
    for (let i = 0; i < perPublisher; i++) {
      if (i === 20) await postgres.admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'canopy-bus' AND datname = current_database()")
      await publishUntilAcked(publisher, [a, b][p] as FastifyInstance, 'kill', `${p}:${i}`, `${p}-${i}`)
    }
  }))
  const received = await Promise.all(watchers.map(async (w) => await collect(t, w, 2 * perPublisher)))
  await publishing
  for (const messages of received) {
    t.same(messages.map((m) => m.id), Array.from({ length: 2 * perPublisher }, (_, i) => i + 1), 'every message, once, in order')
  }
  t.equal((await a.inject({ url: '/readyz' })).statusCode, 200)
})

t.test("one instance's LISTEN killed while another publishes: it catches up from the table", async (t) => {
  const { postgres, instances: [{ app: a, user: alice }, { app: b, user: bob }] } = await startInstances(t, 2, {}, unhurriedCommits)
  const watcher = await connect(b, bob.cookie, { topic: 'deaf' })
  await watcher.nextOf('subscribed')
  const publisher = await connect(a, alice.cookie, { topic: 'quiet' })
  await publisher.nextOf('subscribed')
  // The instance built second connected its LISTEN last.
  const [newest] = (await postgres.admin(
    "SELECT pid FROM pg_stat_activity WHERE application_name = 'canopy-bus' AND datname = current_database() ORDER BY backend_start DESC LIMIT 1")).rows as Array<{ pid: number }>
  for (let i = 0; i < 40; i++) {
    if (i === 10) await postgres.admin('SELECT pg_terminate_backend($1)', [newest?.pid])
    await publishUntilAcked(publisher, a, 'deaf', `m${i}`, `d-${i}`)
  }
  const seen = await collect(t, watcher, 40)
  t.same(seen.map((m) => m.text), Array.from({ length: 40 }, (_, i) => `m${i}`), 'every message, once, in order')
  await b.topicBus.whenReady()
  t.equal((await b.inject({ url: '/readyz' })).statusCode, 200)
})

t.test('the Postgres server stopped and started: unavailable meanwhile, then everything resumes', async (t) => {
  const { postgres, instances: [{ app: a, user: alice }, { app: b, user: bob }] } = await startInstances(t, 2)
  if (postgres.stop === undefined || postgres.start === undefined) {
    t.comment('skipped: needs a Postgres server this test may stop (unset TEST_DATABASE_URL)')
    return
  }
  const watcher = await connect(b, bob.cookie, { topic: 'restart' })
  await watcher.nextOf('subscribed')
  const publisher = await connect(a, alice.cookie, { topic: 'restart' })
  await publisher.nextOf('subscribed')

  const acked: number[] = []
  acked.push(await publishUntilAcked(publisher, a, 'restart', 'before', 'r-0'))
  await postgres.stop()
  publisher.send({ type: 'publish', topic: 'restart', text: 'during', ref: 'r-1' })
  t.match(await publisher.nextOf('error'), { code: 'unavailable', ref: 'r-1' })
  t.equal((await a.inject({ url: '/readyz' })).statusCode, 503)
  t.equal((await b.inject({ url: '/readyz' })).statusCode, 503)
  await postgres.start()
  await Promise.all([a.topicBus.whenReady(), b.topicBus.whenReady()])
  acked.push(await publishUntilAcked(publisher, a, 'restart', 'during', 'r-1'))
  acked.push(await publishUntilAcked(publisher, a, 'restart', 'after', 'r-2'))
  t.same(acked, [1, 2, 3])
  const seen = await collect(t, watcher, 3)
  t.same(seen.map((m) => m.text), ['before', 'during', 'after'], 'no acked message missing, none twice')
  t.equal((await a.inject({ url: '/readyz' })).statusCode, 200)
  t.equal((await b.inject({ url: '/readyz' })).statusCode, 200)
})
