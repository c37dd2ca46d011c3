import t from 'tap'
import { busChannel } from '../../src/bus-format.js'
import type { ServerFrame } from '../../src/protocol.js'
import { buildTestApp, register, type TestContext } from '../helpers/app.js'
import { connectTcp, ticketFor, type ChatClient } from '../helpers/chat.js'
import { startInstances } from '../helpers/instances.js'
import type { TestPostgres } from '../helpers/postgres.js'

// Presence churn, rows and sweeps on two real instances of one real Postgres (issue 21):
// PRESENCE_GRACE, topic_presence rows at zero, ghost presence, instances with different
// PRESENCE_TTL. The grace is short, and every wait is for a frame, a notification or a sweep.

type Presence = Extract<ServerFrame, { type: 'joined' | 'left' }>

/** Takes frames up to the presence frame wanted; returns the presence frames of `topic` seen on the way, it included. */
async function presenceUntil (client: ChatClient, topic: string, type: 'joined' | 'left', user: string): Promise<string[]> {
  const seen: string[] = []
  for (;;) {
    const frame = await client.next()
    if ((frame.type === 'joined' || frame.type === 'left') && frame.topic === topic) {
      seen.push(`${frame.type} ${(frame as Presence).user}`)
      if (frame.type === type && frame.user === user) return seen
    }
  }
}

/** Every write to the presence tables, counted by a trigger, and every presence NOTIFY, heard on a connection of the test. */
async function watchPresence (t: TestContext, postgres: TestPostgres): Promise<{ writes: () => Promise<number>, notifies: (topic: string) => string[], heard: (topic: string, line: string) => Promise<void> }> {
  await postgres.admin(`
    CREATE TABLE presence_writes (what text NOT NULL);
    CREATE FUNCTION count_presence_write() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO presence_writes VALUES (TG_TABLE_NAME || ' ' || TG_OP); RETURN NULL; END $$;
    CREATE TRIGGER count_presence_writes AFTER INSERT OR UPDATE OR DELETE ON presence FOR EACH ROW EXECUTE FUNCTION count_presence_write();
    CREATE TRIGGER count_topic_presence_writes AFTER INSERT OR UPDATE OR DELETE ON topic_presence FOR EACH ROW EXECUTE FUNCTION count_presence_write();`)
  const listener = await postgres.client()
  const lines: Array<{ topic: string, line: string }> = []
  const waiters: Array<() => void> = []
  listener.on('notification', ({ payload }) => {
    const event = (JSON.parse(payload ?? '{}') as { e?: { kind?: string, topic?: string, user?: string, joined?: boolean } }).e
    if (event?.kind !== 'presence' || event.topic === undefined) return
    lines.push({ topic: event.topic, line: `${event.joined === true ? 'joined' : 'left'} ${event.user ?? ''}` })
    for (const wake of waiters.splice(0)) wake()
  })
  await listener.query(`LISTEN ${busChannel}`)
  t.teardown(async () => { await postgres.admin('DROP TABLE presence_writes CASCADE; DROP FUNCTION count_presence_write CASCADE') })
  const notifies = (topic: string): string[] => lines.filter((l) => l.topic === topic).map((l) => l.line)
  return {
    writes: async () => Number((await postgres.admin('SELECT count(*) AS n FROM presence_writes')).rows[0].n),
    notifies,
    heard: async (topic, line) => { while (!notifies(topic).includes(line)) await new Promise<void>((resolve) => { waiters.push(resolve) }) }
  }
}
t.test('PRESENCE_GRACE across two instances', async (t) => {
  const { postgres, instances: [a, b] } = await startInstances(t, 2, { PRESENCE_GRACE: '3', HISTORY_READ_RATE: '10000', HISTORY_READ_BURST: '10000' })
  const watch = await watchPresence(t, postgres)
  const urlA = await a.app.listen({ port: 0, host: '127.0.0.1' })
  const urlB = await b.app.listen({ port: 0, host: '127.0.0.1' })
  const ticket = await ticketFor(b.app, b.user.cookie)
  const observer = await connectTcp(urlA, a.user.cookie, await ticketFor(a.app, a.user.cookie), { topic: 'loop' })
  await observer.nextOf('subscribed')
  observer.send({ type: 'subscribe', topic: 'reload' })
  await observer.nextOf('subscribed')
  // The observer is in both topics too: what is counted is b's user.
  const rowsOf = async (table: 'presence' | 'topic_presence', topic: string): Promise<number> =>
    Number((await postgres.admin(`SELECT count(*) AS n FROM ${table} WHERE topic = $1 AND user_id = $2`, [topic, b.user.id])).rows[0].n)
  const notifiesOf = (topic: string): string[] => watch.notifies(topic).filter((line) => line.endsWith(` ${b.user.username}`))

  await t.test('a subscribe-unsubscribe loop on the other instance: no frame, no NOTIFY, no write until the grace after the last', async (t) => {
    const looper = await connectTcp(urlB, b.user.cookie, ticket, { topic: 'elsewhere' })
    await looper.nextOf('subscribed')
    looper.send({ type: 'subscribe', topic: 'loop' })
    await looper.nextOf('subscribed')
    t.same(await presenceUntil(observer, 'loop', 'joined', b.user.username), [`joined ${b.user.username}`])
    await watch.heard('loop', `joined ${b.user.username}`)
    const writesBefore = await watch.writes()
    for (let i = 0; i < 100; i++) {
      looper.send({ type: 'unsubscribe', topic: 'loop' })
      await looper.nextOf('unsubscribed')
      looper.send({ type: 'subscribe', topic: 'loop' })
      await looper.nextOf('subscribed')
    }
    t.equal(await watch.writes(), writesBefore, '100 cycles wrote nothing to presence or topic_presence')
    looper.send({ type: 'unsubscribe', topic: 'loop' })
    await looper.nextOf('unsubscribed')
    t.same(await presenceUntil(observer, 'loop', 'left', b.user.username), [`left ${b.user.username}`], 'one left, once the grace after the last unsubscribe is over, and no frame before it')
    await watch.heard('loop', `left ${b.user.username}`)
    t.same(notifiesOf('loop'), [`joined ${b.user.username}`, `left ${b.user.username}`], 'two NOTIFYs in all')
    t.equal(await watch.writes() - writesBefore, 3, 'one exit: the presence row, the count, the count\'s row at zero')
    t.equal(await rowsOf('topic_presence', 'loop'), 0, 'topic_presence keeps no row at zero')
    t.equal(await rowsOf('presence', 'loop'), 0)
    looper.close()
  })

  await t.test('a reload that lands on the other instance within the grace shows nothing to the others', async (t) => {
    const onA = await connectTcp(urlA, b.user.cookie, ticket, { topic: 'reload' })
    await onA.nextOf('subscribed')
    t.same(await presenceUntil(observer, 'reload', 'joined', b.user.username), [`joined ${b.user.username}`])
    onA.close()
    await onA.closed
    const onB = await connectTcp(urlB, b.user.cookie, ticket, { topic: 'reload' })
    t.same((await onB.nextOf('subscribed')).present, [a.user.username, b.user.username].sort(), 'still present meanwhile')
    t.same((await a.app.inject({ url: '/api/topics/reload/presence', headers: { cookie: a.user.cookie } })).json(),
      { present: [a.user.username, b.user.username].sort() })
    onB.close()
    t.same(await presenceUntil(observer, 'reload', 'left', b.user.username), [`left ${b.user.username}`], 'no left for the page that went, no joined for the one that came: one left at the end')
    await watch.heard('reload', `left ${b.user.username}`)
    t.same(notifiesOf('reload'), [`joined ${b.user.username}`, `left ${b.user.username}`])
    t.equal(await rowsOf('topic_presence', 'reload'), 0)
  })
  observer.close()
})

t.test('sweeps: presence of an instance whose row is gone goes; instances with different PRESENCE_TTL leave each other alone', async (t) => {
  // a beats every 250 ms and sweeps as often; b beats every 150 s.
  const { postgres, instances: [a] } = await startInstances(t, 1, { PRESENCE_TTL: '1', PRESENCE_GRACE: '0' })
  const b = await buildTestApp(t, { DATABASE_URL: postgres.url, PRESENCE_TTL: '600', PRESENCE_GRACE: '0' })
  const bUser = await register(b)
  const urlA = await a.app.listen({ port: 0, host: '127.0.0.1' })
  const urlB = await b.listen({ port: 0, host: '127.0.0.1' })
  const observer = await connectTcp(urlA, a.user.cookie, await ticketFor(a.app, a.user.cookie), { topic: 'room' })
  await observer.nextOf('subscribed')
  const onB = await connectTcp(urlB, bUser.cookie, await ticketFor(b, bUser.cookie), { topic: 'room' })
  await onB.nextOf('subscribed')
  t.same(await presenceUntil(observer, 'room', 'joined', bUser.username), [`joined ${bUser.username}`])

  // Sweeps of a until b's last beat is over 2 s old: a's own TTL of 1 s has long run out.
  const joinedAtMs = Date.now()
  let sweeps = 0
  while (Date.now() - joinedAtMs < 2000 || sweeps < 2) {
    await a.app.presence.swept()
    sweeps += 1
  }
  t.same((await a.app.inject({ url: '/api/topics/room/presence', headers: { cookie: a.user.cookie } })).json(),
    { present: [a.user.username, bUser.username].sort() }, `b's user is still present after ${sweeps} sweeps of a`)
  t.notOk(observer.queued.some((frame) => frame.type === 'left'), 'and nobody was told otherwise')

  // b taken for dead (its row gone) and killed before its next beat: its presence is a ghost.
  await postgres.admin('DELETE FROM instances WHERE id = $1', [b.topicBus.transport?.instanceId])
  t.same(await presenceUntil(observer, 'room', 'left', bUser.username), [`left ${bUser.username}`], 'the next sweep removes it')
  t.same((await a.app.inject({ url: '/api/topics/room/presence', headers: { cookie: a.user.cookie } })).json(), { present: [a.user.username] })
  t.same((await postgres.admin('SELECT count(*)::int AS n FROM presence WHERE user_id = $1', [bUser.id])).rows, [{ n: 0 }])
  t.same((await postgres.admin('SELECT count(*)::int AS n FROM topic_presence WHERE user_id = $1', [bUser.id])).rows, [{ n: 0 }])
  for (const client of [observer, onB]) client.close()
})

t.test('an instance shutting down keeps its users counted for the grace: one that reconnects to another instance shows nothing', async (t) => {
  const { instances: [a, b] } = await startInstances(t, 2, { PRESENCE_GRACE: '3', PRESENCE_TTL: '4' })
  const urlA = await a.app.listen({ port: 0, host: '127.0.0.1' })
  const urlB = await b.app.listen({ port: 0, host: '127.0.0.1' })
  const ticket = await ticketFor(b.app, b.user.cookie)
  const observer = await connectTcp(urlA, a.user.cookie, await ticketFor(a.app, a.user.cookie), { topic: 'room' })
  await observer.nextOf('subscribed')
  const onB = await connectTcp(urlB, b.user.cookie, ticket, { topic: 'room' })
  await onB.nextOf('subscribed')
  t.same(await presenceUntil(observer, 'room', 'joined', b.user.username), [`joined ${b.user.username}`])

  await b.app.close()
  t.equal((await onB.closed).code, 1001)
  const onA = await connectTcp(urlA, b.user.cookie, ticket, { topic: 'room' })
  t.same((await onA.nextOf('subscribed')).present, [a.user.username, b.user.username].sort())
  // a's sweep removes b's presence once b's grace is over: b's user stays, counted on a.
  const closedAtMs = Date.now()
  while (Date.now() - closedAtMs < 4000) await a.app.presence.swept()
  t.same((await a.app.inject({ url: '/api/topics/room/presence', headers: { cookie: a.user.cookie } })).json(),
    { present: [a.user.username, b.user.username].sort() }, 'present all along')
  onA.close()
  t.same(await presenceUntil(observer, 'room', 'left', b.user.username), [`left ${b.user.username}`], 'no left when b went, no joined when the user came to a: one left at the end')
  observer.close()
})
