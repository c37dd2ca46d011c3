import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, register } from '../helpers/app.js'
import { connect, connectTcp, ticketFor, type ChatClient } from '../helpers/chat.js'
import { startInstances } from '../helpers/instances.js'
import { publishPausingForTheFirstHint } from '../helpers/pausing-client.js'
import { CloseCode } from '../../src/protocol.js'

/**
 * The politeness rule of docs/protocol.md: a client that pauses for the `retryAfterMs` it was
 * given after a `rate_limited` (each refused publish's own, or simply the first refusal's),
 * with up to 32 publishes in flight, is never closed and gets every publish acked; one that
 * keeps sending without pausing is closed with 1008. Small limits keep the runs short, and
 * low enough that any machine meets them.
 */
const smallLimits = { PUBLISH_RATE: '10', PUBLISH_BURST: '5' }

async function countIn (app: FastifyInstance, topic: string): Promise<number> {
  const rows = await app.db.query<{ n: number, refs: number }>('SELECT count(*)::int AS n, count(DISTINCT ref)::int AS refs FROM messages WHERE topic = $1', [topic])
  if (rows[0]?.n !== rows[0]?.refs) throw new Error(`a ref of ${topic} was stored twice`)
  return rows[0]?.n ?? -1
}

t.test('one instance: a client that pauses once for the first refusal\'s hint, then sends its window again', async (t) => {
  const app = await buildTestApp(t, smallLimits)
  const { cookie } = await register(app)
  for (const window of [20, 32]) {
    const topic = `pausing-${window}`
    const client = await connect(app, cookie, { topic })
    await client.nextOf('subscribed')
    const run = await publishPausingForTheFirstHint(client, { topic, total: 60, window, refPrefix: `w${window}-` })
    t.equal(run.acked, 60, `${window} in flight: all 60 acked after ${run.refusals} refusals and ${run.pauses} pauses`)
    t.ok(run.refusals > 0, 'the limit was met')
    t.equal(client.socket.readyState, client.socket.OPEN, 'never closed')
    t.equal(await countIn(app, topic), 60, 'each stored once')
    client.close()
  }
})

t.test('one instance at the default limits (20/s, burst 60): 200 publishes, 20 in flight, pausing for the first hint', async (t) => {
  const app = await buildTestApp(t)
  const { cookie } = await register(app)
  const client = await connect(app, cookie, { topic: 'defaults' })
  await client.nextOf('subscribed')
  const startedMs = Date.now()
  const run = await publishPausingForTheFirstHint(client, { topic: 'defaults', total: 200, window: 20, refPrefix: 'd' })
  const tookSeconds = (Date.now() - startedMs) / 1000
  t.equal(run.acked, 200, `all acked after ${run.refusals} refusals and ${run.pauses} pauses`)
  // The limit is met unless the machine itself was slower than it: 200 publishes at 20/s
  // after a burst of 60 take 7 s at least; faster than that, some must have been refused.
  t.ok(run.refusals > 0 || tookSeconds >= (200 - 60) / 20, `the limit was met (${run.refusals} refusals in ${tookSeconds} s)`)
  t.equal(client.socket.readyState, client.socket.OPEN, 'never closed')
  t.equal(await countIn(app, 'defaults'), 200)
  client.close()
})

t.test('one instance: a client that waits each refused publish\'s own hint, 32 in flight', async (t) => {
  const app = await buildTestApp(t, smallLimits)
  const { cookie } = await register(app)
  const client = await connectTcp(await app.listen({ port: 0, host: '127.0.0.1' }), cookie, await ticketFor(app, cookie), { topic: 'own-hint' })
  await client.nextOf('subscribed')
  const total = 60
  const window = 32
  const acked = new Set<string>()
  let nextToSend = 0
  let refusals = 0
  const send = (ref: string): void => { client.send({ type: 'publish', topic: 'own-hint', text: ref, ref }) }
  // In flight: sent and not acked, waits included (as public/connection.js counts).
  while (nextToSend < window) send(`p${nextToSend++}`)
  while (acked.size < total) {
    const frame = await client.next()
    if (frame.type === 'ack') {
      acked.add(frame.ref)
      if (nextToSend < total) send(`p${nextToSend++}`)
    } else if (frame.type === 'error') {
      const { ref, retryAfterMs } = frame
      if (frame.code !== 'rate_limited' || ref === undefined || retryAfterMs === undefined) throw new Error(`not a rate refusal of a publish: ${JSON.stringify(frame)}`)
      refusals++
      // The client's own timer per ref (its behaviour under test).
      setTimeout(() => { send(ref) }, retryAfterMs)
    }
  }
  t.equal(acked.size, total, `all ${total} acked after ${refusals} refusals`)
  t.ok(refusals > 0, 'the limit was met')
  t.equal(client.socket.readyState, client.socket.OPEN, 'never closed')
  t.equal(await countIn(app, 'own-hint'), total)
  client.close()
})

/** Sends every refused publish again at once; resolves with what it saw once the socket closes. */
async function publishWithoutPausing (client: ChatClient, topic: string): Promise<{ acked: number, refusals: number }> {
  const send = (ref: string): void => { client.send({ type: 'publish', topic, text: ref, ref }) }
  for (let i = 0; i < 20; i++) send(`i${i}`)
  let acked = 0
  let refusals = 0
  for (;;) {
    let frame
    try {
      frame = await client.next()
    } catch {
      return { acked, refusals }
    }
    if (frame.type === 'ack') acked++
    if (frame.type === 'error' && frame.ref !== undefined) {
      refusals++
      send(frame.ref)
    }
  }
}

t.test('one instance: a client that sends each refused publish again at once is closed with 1008', async (t) => {
  const app = await buildTestApp(t, { PUBLISH_RATE: '0.001', PUBLISH_BURST: '3' })
  const { cookie } = await register(app)
  const client = await connect(app, cookie, { topic: 'impatient' })
  await client.nextOf('subscribed')
  const { acked, refusals } = await publishWithoutPausing(client, 'impatient')
  t.same(await client.closed, { code: CloseCode.policy, reason: 'kept sending without pausing after rate limiting' })
  t.equal(acked, 3, 'the burst was acked')
  t.ok(refusals <= 64, `closed within twice the 32 a polite client may have in flight: after ${refusals} refusals`)
  t.equal(await countIn(app, 'impatient'), 3, 'nothing refused was stored')
})

t.test('two instances on one Postgres: the same user, pausing for the first hint on both, 20 and 32 in flight', async (t) => {
  const { instances: [a, b] } = await startInstances(t, 2, smallLimits)
  const { cookie } = a.user
  const clients = [await connectTcp(await a.app.listen({ port: 0, host: '127.0.0.1' }), cookie, await ticketFor(a.app, cookie), { topic: 'cluster-a' }),
    await connectTcp(await b.app.listen({ port: 0, host: '127.0.0.1' }), cookie, await ticketFor(b.app, cookie), { topic: 'cluster-b' })]
  await Promise.all(clients.map(async (client) => await client.nextOf('subscribed')))
  // One bucket for the user across both instances: each client meets the other's refusals.
  const runs = await Promise.all(clients.map(async (client, i) => {
    const topic = i === 0 ? 'cluster-a' : 'cluster-b'
    return await publishPausingForTheFirstHint(client, { topic, total: 40, window: i === 0 ? 20 : 32, refPrefix: `c${i}-` })
  }))
  for (const [i, run] of runs.entries()) t.equal(run.acked, 40, `instance ${i + 1}: all acked after ${run.refusals} refusals and ${run.pauses} pauses`)
  t.ok(runs.some((run) => run.refusals > 0), 'the limit was met')
  for (const client of clients) t.equal(client.socket.readyState, client.socket.OPEN, 'never closed')
  t.equal(await countIn(a.app, 'cluster-a'), 40)
  t.equal(await countIn(b.app, 'cluster-b'), 40)
  for (const client of clients) client.close()
})
