import t from 'tap'
import { buildTestApp, register, uniqueName } from '../helpers/app.js'
import { connectTcp, type ChatClient } from '../helpers/chat.js'
import { sessionCookie } from '../helpers/http.js'
import { startPostgres } from '../helpers/postgres.js'
import { ServerProcess } from '../helpers/server-process.js'
import { redactUrl } from '../../server/app.js'
import { CloseCode } from '../../src/protocol.js'

t.test('logs hold no secret (url, failed query), health probes are not logged, a protocol fault is one line', async (t) => {
  // A real Postgres, so that the test can make a query fail from outside the server.
  const postgres = await startPostgres(t)
  // The server entry point as `npm start` runs it, logging at info, with its log captured.
  const log = new ServerProcess(t, { DATABASE_URL: postgres.url })
  const baseUrl = await log.listening()
  let markers = 0
  /**
   * Sends a request that is logged and returns the index of its first line and its reqId:
   * every line of what the test did before it is written by then.
   */
  const mark = async (): Promise<{ index: number, reqId: string | undefined }> => {
    const path = `/api/log-marker-${++markers}`
    const from = log.lines.length
    t.equal((await fetch(`${baseUrl}${path}`)).status, 404)
    const index = await log.waitForIndex((line) => line.req?.url === path, from)
    return { index, reqId: log.lines[index]?.reqId }
  }

  const username = uniqueName()
  const password = `secret password ${process.pid}`
  const credentials = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) }
  t.equal((await fetch(`${baseUrl}/api/register`, credentials)).status, 201)
  const login = await fetch(`${baseUrl}/api/login`, credentials)
  t.equal(login.status, 200)
  const cookie = sessionCookie(login)
  const cookieValue = decodeURIComponent(cookie.split('=')[1] ?? '')
  t.not(cookieValue, '', 'login set a session cookie')
  const me = await fetch(`${baseUrl}/api/me`, { headers: { cookie } })
  t.equal(me.status, 200)
  t.equal(me.headers.get('cache-control'), 'no-store', '/api/me holds the ticket: no cache keeps it')
  const { wsTicket } = await me.json() as { wsTicket: string }

  await t.test('no line holds the ticket, the password or the cookie', async (t) => {
    const client = await connectTcp(baseUrl, cookie, wsTicket, { topic: 'logs' })
    await client.nextOf('subscribed')
    client.close()
    await client.closed
    // A ticket sent where no route or no readable url takes it is logged no more.
    t.equal((await fetch(`${baseUrl}/chat/?ticket=${wsTicket}`)).status, 404)
    t.equal((await fetch(`${baseUrl}/%E0%A4%A?ticket=${wsTicket}`)).status, 400)
    const end = await mark()
    const chatLines = log.lines.slice(0, end.index).filter((line) => line.req?.url?.startsWith('/chat') === true)
    t.ok(chatLines.length > 0, 'the /chat upgrade is logged, with its path')
    for (const [secret, value] of [['ticket', wsTicket], ['password', password], ['cookie', cookieValue]] as const) {
      t.same(log.lines.filter((line) => line.raw.includes(value)).map((line) => line.raw), [], `no line holds the ${secret}`)
    }
  })

  await t.test('/healthz and /readyz add no line at info', async (t) => {
    const start = await mark()
    t.equal((await fetch(`${baseUrl}/healthz`)).status, 200)
    t.equal((await fetch(`${baseUrl}/readyz`)).status, 200)
    const end = await mark()
    const lines = log.lines.slice(start.index, end.index).filter((line) => line.reqId !== start.reqId)
    t.same(lines.map((line) => line.raw), [])
  })

  await t.test('a failed query is logged without its parameters (a password hash, a session\'s ticket)', async (t) => {
    await postgres.admin(`CREATE FUNCTION refuse_for_test() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
      CREATE TRIGGER refuse_for_test BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION refuse_for_test();
      CREATE TRIGGER refuse_for_test BEFORE INSERT ON sessions FOR EACH ROW EXECUTE FUNCTION refuse_for_test();`)
    t.teardown(async () => { await postgres.admin('DROP FUNCTION refuse_for_test() CASCADE') })
    const start = await mark()
    t.equal((await fetch(`${baseUrl}/api/register`, { ...credentials, body: JSON.stringify({ username: uniqueName(), password }) })).status, 500)
    t.equal((await fetch(`${baseUrl}/api/login`, credentials)).status, 503)
    const end = await mark()
    const failures = log.lines.slice(start.index, end.index).filter((line) => line.msg === 'request failed')
    t.equal(failures.length, 2, 'both failures are logged')
    for (const line of failures) {
      t.match(line.raw, /refused by the test/, 'with the reason the database gave')
      t.notMatch(line.raw, /\$argon2|wsTicket|params:/, 'without the values of the query')
    }
  })

  await t.test('a socket\'s open and close are a line each at info: the user, the close code, the topics', async (t) => {
    const start = await mark()
    const client = await connectTcp(baseUrl, cookie, wsTicket, { topic: 'logs' })
    await client.nextOf('subscribed')
    client.send({ type: 'subscribe', topic: 'logs-too' })
    await client.nextOf('subscribed')
    client.socket.close(1000, 'done')
    await client.closed
    const closedAt = await log.waitForIndex((line) => line.msg === 'socket closed', start.index)
    const opened = log.lines.slice(start.index, closedAt).filter((line) => line.msg === 'socket opened')
    t.match(opened, [{ level: 30, user: username, topic: 'logs', reqId: String }], 'opened: who, and the topic of the url')
    t.match(log.lines[closedAt], { level: 30, user: username, code: 1000, reason: 'done', topics: ['logs', 'logs-too'] }, 'closed: who, how, and what it was subscribed to')
    t.equal(log.lines[closedAt]?.reqId, opened[0]?.reqId, 'the same reqId as the upgrade')
  })

  await t.test('rate-limit refusals are logged at info, sampled: a flood of them is a line or two', async (t) => {
    const client = await connectTcp(baseUrl, cookie, wsTicket, { topic: 'logs-flood' })
    await client.nextOf('subscribed')
    const start = await mark()
    // 100 at once against a burst of 60: about 40 refused, fewer than a polite client may
    // have refused within one pause (it stays open).
    for (let i = 0; i < 100; i++) client.send({ type: 'publish', topic: 'logs-flood', text: 'flood', ref: `flood-${i}` })
    let refusals = 0
    for (let answered = 0; answered < 100; answered++) {
      const frame = await client.next()
      if (frame.type === 'error') refusals++
      else if (frame.type !== 'ack') answered--
    }
    const end = await mark()
    const lines = log.lines.slice(start.index, end.index).filter((line) => line.msg === 'rate limited')
    t.ok(refusals > 10, `${refusals} refused`)
    t.ok(lines.length >= 1 && lines.length < refusals, `${lines.length} lines for ${refusals} refusals`)
    t.match(lines[0], { level: 30, user: username, retryAfterMs: Number, unlogged: Number })
    t.notMatch(lines[0]?.raw ?? '', /"stack"/)
    client.close()
  })

  const faults: Array<[string, (client: ChatClient) => void, number]> = [
    ['a frame over 64 KiB', (client) => { client.send('x'.repeat(64 * 1024 + 1)) }, CloseCode.frameTooLarge],
    ['a text frame that is not UTF-8', (client) => { client.socket.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false }) }, CloseCode.invalidUtf8]
  ]
  for (const [what, send, closeCode] of faults) {
    await t.test(`${what}: one line, without a stack`, async (t) => {
      const client = await connectTcp(baseUrl, cookie, wsTicket, { topic: 'logs' })
      await client.nextOf('subscribed')
      const start = await mark()
      send(client)
      t.equal((await client.closed).code, closeCode)
      const end = await mark()
      // The first marker's own lines are not the fault's.
      const lines = log.lines.slice(start.index, end.index).filter((line) => line.reqId !== start.reqId)
      t.equal(lines.length, 1, lines.map((line) => line.raw).join('\n'))
      t.match(lines[0], { msg: 'socket closed', code: closeCode, reason: /^WS_ERR_/ }, 'the close line, which says the fault')
      t.notMatch(lines[0]?.raw ?? '', /"stack"/)
    })
  }
})

t.test('a logged url never shows a ticket, however its name is spelled', async (t) => {
  const cases: Array<[string, string]> = [
    ['/chat?ticket=s3cret&topic=general', '/chat?ticket=[redacted]&topic=general'],
    ['/chat?topic=general&ticket=s3cret&ticket=again', '/chat?topic=general&ticket=[redacted]&ticket=[redacted]'],
    ['/chat?%74icket=s3cret', '/chat?ticket=[redacted]'],
    ['/chat?ticket', '/chat?ticket=[redacted]'],
    ['/chat?%zz=1&ticket=s3cret', '/chat?[redacted]'],
    ['/api/topics/general/messages?before=5&limit=10', '/api/topics/general/messages?before=5&limit=10'],
    ['/healthz', '/healthz']
  ]
  for (const [url, logged] of cases) t.equal(redactUrl(url), logged, url)
})

t.test('while the topic bus is down, refused publishes log one warning per 10 s, without a stack', async (t) => {
  const app = await buildTestApp(t)
  const { cookie } = await register(app)
  const warnings: unknown[][] = []
  const warn = app.log.warn.bind(app.log)
  app.log.warn = ((...args: unknown[]) => { warnings.push(args) }) as typeof app.log.warn
  t.teardown(() => { app.log.warn = warn })
  Object.defineProperty(app.topicBus, 'ready', { configurable: true, get: () => false })
  t.teardown(() => { Reflect.deleteProperty(app.topicBus, 'ready') })
  for (let i = 0; i < 20; i++) {
    const response = await app.inject({ method: 'POST', url: '/api/topics/outage/messages', headers: { cookie }, payload: { text: 'hello', ref: `outage-${i}` } })
    t.equal(response.statusCode, 503)
  }
  t.equal(warnings.length, 1, 'one line for 20 refusals')
  const [fields, message] = warnings[0] ?? []
  t.equal(message, 'publishes refused: the topic bus is reconnecting')
  t.match(fields, { topic: 'outage', unlogged: 0 })
  t.notOk(fields !== null && typeof fields === 'object' && 'err' in fields, 'no error object, so no stack')
})
