import { readFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import { startPostgres } from '../helpers/postgres.js'
import { registerOver, ServerProcess } from '../helpers/server-process.js'
import { requestLogLevel } from '../../src/request-log.js'
import { shutdownLogging } from '../../src/startup.js'

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

t.test('what an operator reads at info: start-up, failures and changes, not every read; /readyz names parts only', async (t) => {
  const postgres = await startPostgres(t)
  const server = new ServerProcess(t, { DATABASE_URL: postgres.url, SESSION_SECRET: 's'.repeat(40) })
  const baseUrl = await server.listening()

  const started = await server.waitFor((line) => line.msg === 'canopy started')
  t.equal(started.level, 30, 'at info')
  t.match(started, { version, node: process.version, database: 'postgres', instance: /^[0-9a-f]{8}$/ }, 'with the version, Node, the database kind and the instance id')

  let markers = 0
  /** A request logged at info (a 404): every line of what came before it is written by then. */
  const mark = async (): Promise<number> => {
    const url = `/api/log-marker-${++markers}`
    const from = server.lines.length
    t.equal((await fetch(`${baseUrl}${url}`)).status, 404)
    const marker = await server.waitFor((line) => line.msg === 'request completed' && line.req?.url === url, from)
    return server.lines.indexOf(marker)
  }
  /** The request lines between two markers, as `METHOD url status`. */
  const requestsBetween = (from: number, to: number): string[] => server.lines.slice(from + 1, to)
    .filter((line) => line.req !== undefined)
    .map((line) => `${line.req?.method ?? ''} ${line.req?.url ?? ''} ${line.res?.statusCode ?? ''}`.trim())

  await t.test('successful reads are not logged at info; changes and failures are, one line each', async (t) => {
    const { cookie } = await registerOver(baseUrl, 'reader')
    const start = await mark()
    t.equal((await fetch(`${baseUrl}/`)).status, 200)
    t.equal((await fetch(`${baseUrl}/api/me`, { headers: { cookie } })).status, 200)
    t.equal((await fetch(`${baseUrl}/api/topics`, { headers: { cookie } })).status, 200)
    t.equal((await fetch(`${baseUrl}/healthz`)).status, 200)
    const reads = await mark()
    t.same(requestsBetween(start, reads), [], 'no line for a page, an API read or a probe')

    t.equal((await fetch(`${baseUrl}/api/topics/logged/messages`, { method: 'POST', headers: { cookie, 'content-type': 'application/json', origin: baseUrl }, body: JSON.stringify({ text: 'hello', ref: 'r1' }) })).status, 201)
    t.equal((await fetch(`${baseUrl}/api/me`)).status, 401)
    const end = await mark()
    t.same(requestsBetween(reads, end), ['POST /api/topics/logged/messages 201', 'GET /api/me 401'], 'a publish and a refusal, each on the line that ends it')
  })

  await t.test('/readyz names the part that is not ready, and the log says why', async (t) => {
    if (postgres.stop === undefined) {
      t.comment('skipped: stopping the database needs the embedded Postgres server')
      return
    }
    await postgres.stop()
    const from = server.lines.length
    const response = await fetch(`${baseUrl}/readyz`)
    t.equal(response.status, 503)
    const body = await response.json() as Record<string, unknown>
    t.same(Object.keys(body), ['error', 'message'])
    t.equal(body.error, 'not_ready')
    t.match(body.message, /^Not ready: (database|topic bus|commits)(, (database|topic bus|commits))*$/, 'only the names of the parts')
    t.match(body.message, /database/, 'the database among them')
    const logged = await server.waitFor((line) => line.msg === 'not ready', from)
    t.equal(logged.level, 40, 'a warning')
    const why = (logged.failures as Record<string, string> | undefined)?.database ?? ''
    t.not(why, '', `the database's own words are in the log: ${why}`)
    t.notMatch(JSON.stringify(body), why, 'and not in the answer')
  })

  t.same(server.notJson, [], 'every line is JSON')
})

t.test('the level of a finished request', async (t) => {
  t.equal(requestLogLevel('GET', 200), 'debug', 'a successful read')
  t.equal(requestLogLevel('HEAD', 304), 'debug', 'not modified')
  t.equal(requestLogLevel('GET', 404), 'info', 'a failed read')
  t.equal(requestLogLevel('GET', 503), 'info')
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) t.equal(requestLogLevel(method, 204), 'info', `a change: ${method}`)
})

t.test('what close-with-grace says is a JSON line: a forced exit, a second signal, a failed close', async (t) => {
  const written: string[] = []
  const stream = new Writable({ write (chunk: Buffer, _encoding, done) { written.push(chunk.toString('utf8')); done() } })
  const app = Fastify({ logger: { level: 'info', stream } })
  t.teardown(async () => { await app.close() })
  const { logger, onTimeout, onSecondSignal } = shutdownLogging(app.log)
  onTimeout?.(10_000)
  onSecondSignal?.('SIGTERM')
  if (logger === null || logger === undefined || logger === false) throw new Error('no logger')
  logger.error('killed by timeout (10000ms)')
  logger.error(new Error('the close failed'))
  const lines = written.join('').trim().split('\n').map((line) => JSON.parse(line) as { level: number, msg: string, graceMs?: number, signal?: string, err?: { message: string } })
  t.match(lines, [
    { level: 50, msg: 'shutdown did not finish in time: exiting with 1', graceMs: 10_000 },
    { level: 50, msg: 'second signal during the shutdown: exiting with 1', signal: 'SIGTERM' },
    { level: 50, msg: 'killed by timeout (10000ms)' },
    { level: 50, msg: 'the close failed', err: { message: 'the close failed' } }
  ])
})
