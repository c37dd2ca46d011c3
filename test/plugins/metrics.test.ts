import { readFileSync } from 'node:fs'
import t from 'tap'
import { buildApp } from '../../server/app.js'
import { loadConfig } from '../../src/config.js'
import { errorCodes, CloseCode } from '../../src/protocol.js'
import { buildTestApp, register, testConfig, unhurriedCommits } from '../helpers/app.js'
import { connect, connectTcp, ticketFor, type ChatClient } from '../helpers/chat.js'
import { startInstances } from '../helpers/instances.js'

interface Scrape {
  contentType: string | null
  /** Each series, as `name{labels}`, and its value. */
  series: Map<string, number>
}

/** GET /metrics over real HTTP, read simply: one `name{labels} value` a line, comments skipped. */
async function scrape (url: string | undefined): Promise<Scrape> {
  if (url === undefined) throw new Error('no metrics listener')
  const response = await fetch(`${url}/metrics`)
  if (response.status !== 200) throw new Error(`GET /metrics: ${response.status}`)
  const series = new Map<string, number>()
  for (const line of (await response.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const space = line.lastIndexOf(' ')
    series.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return { contentType: response.headers.get('content-type'), series }
}

function value (scraped: Scrape, series: string): number {
  const found = scraped.series.get(series)
  if (found === undefined) throw new Error(`no series ${series}`)
  return found
}

/** How far each series moved between two scrapes. */
function mover (before: Scrape, after: Scrape): (series: string) => number {
  return (series) => value(after, series) - value(before, series)
}

/** Reads a client's frames until it has `count` messages; returns the other frames seen meanwhile. */
async function messagesAndOthers (client: ChatClient, count: number): Promise<{ messages: number, others: string[] }> {
  let messages = 0
  const others: string[] = []
  while (messages < count) {
    const frame = await client.next()
    if (frame.type === 'message') messages++
    else others.push(frame.type === 'error' ? `error ${frame.code}` : frame.type)
  }
  return { messages, others }
}

t.test('two instances count what they do, each on a listener of its own', async (t) => {
  const topic = 'metrics'
  const { instances: [{ app: a, user: alice }, { app: b, user: bob }] } = await startInstances(t, 2, { METRICS_PORT: '0', MAX_MESSAGE_CHARS: '100' }, unhurriedCommits)
  t.not(a.metricsUrl, b.metricsUrl, 'a listener per instance')
  t.equal((await a.inject({ url: '/metrics' })).statusCode, 404, 'never on PORT')

  // Presence settles before counting: alice's joined is heard on b before bob subscribes
  // there, and bob's is seen on a; alice's second connection joins nobody.
  const aliceHeardOnB = new Promise<void>((resolve) => {
    b.topicBus.onEvent((event) => { if (event.kind === 'presence' && event.topic === topic && event.user === alice.username) resolve() })
  })
  const onA = await connect(a, alice.cookie, { topic })
  await onA.nextOf('subscribed')
  await aliceHeardOnB
  const onB = await connect(b, bob.cookie, { topic })
  await onB.nextOf('subscribed')
  t.match(await onA.nextOf('joined'), { user: bob.username })
  const publisher = await connect(a, alice.cookie, { topic })
  await publisher.nextOf('subscribed')

  const before = { a: await scrape(a.metricsUrl), b: await scrape(b.metricsUrl) }
  const overWebSocket = 4
  for (let i = 0; i < overWebSocket; i++) publisher.send({ type: 'publish', topic, text: `hello ${i}`, ref: `ws-${i}` })
  publisher.send({ type: 'publish', topic, text: 'x'.repeat(101), ref: 'too-long' })
  publisher.send('{"type":"publish",')
  // Refused too, but a subscribe is no publish attempt.
  publisher.send({ type: 'subscribe', topic: 'not a topic' })
  const overHttp = await a.inject({ method: 'POST', url: `/api/topics/${topic}/messages`, headers: { cookie: alice.cookie }, payload: { text: 'over http', ref: 'http-1' } })
  t.equal(overHttp.statusCode, 201, overHttp.body)
  const published = overWebSocket + 1

  const publisherSaw = await messagesAndOthers(publisher, published)
  while (publisherSaw.others.length < overWebSocket + 3) publisherSaw.others.push((await publisher.next()).type)
  t.same(publisherSaw.others.filter((frame) => frame !== 'ack').sort(), ['error bad_json', 'error bad_topic', 'error too_long'])
  t.same(await messagesAndOthers(onA, published), { messages: published, others: [] })
  t.same(await messagesAndOthers(onB, published), { messages: published, others: [] })
  const after = { a: await scrape(a.metricsUrl), b: await scrape(b.metricsUrl) }
  const movedOnA = mover(before.a, after.a)
  const movedOnB = mover(before.b, after.b)

  for (const { contentType } of Object.values(after)) t.match(contentType, /^text\/plain; version=0\.0\.4/)
  const outcome = (name: string): string => `canopy_publishes_total{outcome="${name}"}`
  t.equal(movedOnA(outcome('acked')), published, 'every acked publish, WebSocket and HTTP')
  t.equal(movedOnA(outcome('too_long')), 1)
  t.equal(movedOnA(outcome('bad_json')), 1, 'a frame that cannot be parsed')
  for (const code of errorCodes.filter((code) => code !== 'too_long' && code !== 'bad_json')) t.equal(movedOnA(outcome(code)), 0, `no ${code}`)
  for (const name of ['acked', ...errorCodes]) t.equal(movedOnB(outcome(name)), 0, `nothing published on b: ${name}`)

  t.equal(movedOnA('canopy_deliveries_total'), 2 * published, 'two subscribers on a')
  t.equal(movedOnB('canopy_deliveries_total'), published, 'one subscriber on b')
  t.equal(movedOnB('canopy_bus_lag_seconds_count'), published, 'each message committed on a, heard on b')
  t.equal(movedOnA('canopy_bus_lag_seconds_count'), 0, 'a hears its own commits from no other instance')

  t.equal(movedOnA('canopy_commit_batch_size_sum'), published, 'every publish in one statement')
  const statements = movedOnA('canopy_commit_seconds_count')
  t.ok(statements >= 1 && statements <= published, `${statements} statements`)
  t.equal(movedOnA('canopy_commit_batch_size_count'), statements)
  t.equal(movedOnB('canopy_commit_seconds_count'), 0)

  t.equal(value(after.a, 'canopy_connections'), 2)
  t.equal(value(after.b, 'canopy_connections'), 1)
  t.equal(value(after.a, 'canopy_subscriptions'), 2)
  t.equal(value(after.b, 'canopy_subscriptions'), 1)
  t.equal(value(after.a, 'canopy_listen_up'), 1)
  t.equal(value(after.b, 'canopy_listen_up'), 1)
  t.equal(value(after.a, 'canopy_slow_consumer_closes_total'), 0)
  for (const name of ['process_cpu_user_seconds_total', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
    t.ok(value(after.a, name) >= 0, `process default ${name}`)
  }

  onB.close()
  // Sent once b has closed its side: b no longer counts the connection.
  t.match(await onA.nextOf('left'), { user: bob.username })
  publisher.send({ type: 'unsubscribe', topic })
  await publisher.nextOf('unsubscribed')
  const later = { a: await scrape(a.metricsUrl), b: await scrape(b.metricsUrl) }
  t.equal(value(later.b, 'canopy_connections'), 0, 'a closed connection is gone')
  t.equal(value(later.a, 'canopy_subscriptions'), 1, 'an unsubscribed topic is gone')
  onA.close()
  publisher.close()

  await t.test('a METRICS_PORT in use stops start-up in one line', async (t) => {
    const port = new URL(a.metricsUrl ?? '').port
    const app = await buildApp(testConfig(t, { DATABASE_URL: postgresUrl(a), METRICS_PORT: port }))
    await t.rejects(async () => { await app.ready() }, { name: 'StartupError', message: `METRICS_PORT ${port} on 127.0.0.1 is in use: stop what holds it, or set METRICS_PORT` })
    await app.close()
  })
})

/** The database a running instance uses, for another app on it. */
function postgresUrl (app: { config: { databaseUrl: string | undefined } }): string {
  if (app.config.databaseUrl === undefined) throw new Error('not on Postgres')
  return app.config.databaseUrl
}

t.test('a consumer closed as too slow is counted, and the listener closes with the app', async (t) => {
  const app = await buildTestApp(t, { METRICS_PORT: '0', SEND_BUFFER_LIMIT: '65536' })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  const metricsUrl = app.metricsUrl
  t.equal(value(await scrape(metricsUrl), 'canopy_listen_up'), 1, 'the embedded database hears every instance: itself')
  const { cookie } = await register(app)
  const slow = await connectTcp(url, cookie, await ticketFor(app, cookie), { topic: 'firehose' })
  await slow.nextOf('subscribed')
  // The slow one stops reading; the server's send buffer for it can only grow.
  const raw = (slow.socket as unknown as { _socket: import('node:net').Socket })._socket
  raw.pause()
  const notice = { type: 'joined', topic: 'firehose', user: 'x'.repeat(60_000) } as const
  let sent = 0
  while ([...app.chatConnections].some((connection) => connection.isOpen) && sent < 10_000) {
    app.topicBus.broadcast('firehose', notice)
    sent++
    await new Promise<void>((resolve) => { setImmediate(resolve) })
  }
  raw.resume()
  t.equal((await slow.closed).code, CloseCode.tryAgainLater)
  t.equal(value(await scrape(metricsUrl), 'canopy_slow_consumer_closes_total'), 1)

  await app.close()
  await t.rejects(fetch(`${metricsUrl}/metrics`), 'nothing listens after close')
})

t.test('the metrics listener binds METRICS_HOST, never HOST, and says which build runs', async (t) => {
  // The image sets HOST=0.0.0.0: the metrics stay on loopback unless METRICS_HOST says otherwise.
  const byDefault = await buildTestApp(t, { HOST: '0.0.0.0', METRICS_PORT: '0' })
  t.match(byDefault.metricsUrl, /^http:\/\/127\.0\.0\.1:\d+$/, 'METRICS_HOST defaults to 127.0.0.1 whatever HOST is')
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  t.equal(value(await scrape(byDefault.metricsUrl), `canopy_build_info{version="${version}"}`), 1, 'canopy_build_info carries the version of package.json')

  // Another loopback address than HOST's: the listener is where METRICS_HOST says.
  const elsewhere = await buildTestApp(t, { HOST: '127.0.0.1', METRICS_HOST: '127.0.0.2', METRICS_PORT: '0' })
  t.match(elsewhere.metricsUrl, /^http:\/\/127\.0\.0\.2:\d+$/, 'bound to METRICS_HOST')
  t.equal(value(await scrape(elsewhere.metricsUrl), 'canopy_listen_up'), 1, 'and serving there')
})

t.test('without METRICS_PORT there is no listener', async (t) => {
  const app = await buildTestApp(t)
  t.equal(app.metricsUrl, undefined)
  t.equal((await app.inject({ url: '/metrics' })).statusCode, 404)
})

t.test('METRICS_PORT is validated like the others', async (t) => {
  const env = { DATA_DIR: testConfig(t).dataDir, PORT: '8800' }
  t.equal(loadConfig(env).metricsPort, undefined, 'unset by default')
  t.equal(loadConfig({ ...env, METRICS_PORT: '9464' }).metricsPort, 9464)
  t.throws(() => loadConfig({ ...env, METRICS_PORT: 'nine' }), { message: 'Invalid configuration: METRICS_PORT must be integer' })
  t.throws(() => loadConfig({ ...env, METRICS_PORT: '65536' }), { message: 'Invalid configuration: METRICS_PORT must be <= 65535' })
  t.throws(() => loadConfig({ ...env, METRICS_PORT: '8800' }), /METRICS_PORT must differ from PORT/)
})
