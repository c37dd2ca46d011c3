import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { accessSync, chmodSync, constants, cpSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import type { IncomingHttpHeaders } from 'node:http'
import { createServer as createHttpServer, request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { connect as netConnect, type AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import t, { type Test } from 'tap'
import { WebSocket, WebSocketServer } from 'ws'
import type { MessageFrame, ServerFrame } from '../../src/protocol.js'
import { tempDir } from '../helpers/app.js'
import { ChatClient } from '../helpers/chat.js'
import { instructionArgs, parseDockerfile, replayCopy, runCommands } from '../helpers/dockerfile.js'
import { sessionCookie, sessionCookieIsSecure } from '../helpers/http.js'
import { startPostgres } from '../helpers/postgres.js'
import { freePort } from '../../scripts/embedded-postgres.js'

/**
 * The deploy kit, run as far as this machine can: nginx with the committed config in front
 * of two instances on one Postgres, over TLS; and the Dockerfile's steps outside a container
 * (no container engine runs here, so neither the image nor compose.yaml is run).
 */

const root = fileURLToPath(new URL('../..', import.meta.url))
const templateFile = join(root, 'deploy', 'nginx', 'default.conf.template')

/** An executable on PATH, or in /usr/sbin, where Debian puts nginx, often off a user's PATH. */
function findTool (name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin']) {
    if (dir === '') continue
    try {
      accessSync(join(dir, name), constants.X_OK)
      return join(dir, name)
    } catch {}
  }
  return undefined
}

const placeholder = /\$(?:\{(CANOPY_\w*)\}|(CANOPY_\w*))/g

/**
 * The template filled in as the official nginx image does it with NGINX_ENVSUBST_FILTER=CANOPY_:
 * each $CANOPY_… or ${CANOPY_…} replaced, nothing else ($host and the like stay nginx's).
 */
function renderTemplate (text: string, values: Record<string, string>): string {
  return text.replace(placeholder, (_, braced?: string, bare?: string) => {
    const name = braced ?? bare ?? ''
    const value = values[name]
    if (value === undefined) throw new Error(`the template uses ${name}, which is not set`)
    return value
  })
}

const templateVariables = (text: string): string[] =>
  [...new Set([...text.matchAll(placeholder)].map((match) => match[1] ?? match[2] ?? ''))].sort()

const pause = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms) }) }

interface LogEntry { msg?: string, pid?: number, req?: { method?: string, url?: string, host?: string, remoteAddress?: string } }

/** A child process whose stdout is JSON log lines, kept as they come. */
interface LoggingProcess {
  child: ChildProcessByStdio<null, Readable, Readable>
  logs: LogEntry[]
  exited: Promise<[number | null, NodeJS.Signals | null]>
  running: () => boolean
  stderr: () => string
  /** The address from the "Server listening at" line. */
  listening: Promise<string>
}

function watch (t: Test, child: ChildProcessByStdio<null, Readable, Readable>): LoggingProcess {
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  let running = true
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  void exited.then(() => { running = false })
  const logs: LogEntry[] = []
  const listening = new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout })
    lines.on('line', (line) => {
      let entry: LogEntry
      try {
        entry = JSON.parse(line) as LogEntry
      } catch {
        return
      }
      logs.push(entry)
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(entry.msg ?? '')
      if (match?.[1] !== undefined) resolve(match[1])
    })
    lines.on('close', () => { reject(new Error(`the process ended without listening: ${stderr}`)) })
  })
  listening.catch(() => {})
  return { child, logs, exited, running: () => running, stderr: () => stderr, listening }
}

/** The server entry point as the image runs it, from source through tsx. */
function startInstance (t: Test, env: Record<string, string>): LoggingProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/server.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const instance = watch(t, child)
  t.teardown(async () => {
    if (!instance.running()) return
    child.kill('SIGTERM')
    await instance.exited
  })
  return instance
}

/** How many /chat requests an instance logged: where a socket opened through the balancer went. */
const chatRequests = (instance: LoggingProcess): number =>
  instance.logs.filter((entry) => entry.msg === 'incoming request' && entry.req?.url?.startsWith('/chat') === true).length

/** The instance that logged a /chat request since the counts of `before` were taken. */
async function servedBy (instances: LoggingProcess[], before: number[]): Promise<LoggingProcess> {
  for (;;) {
    const instance = instances.find((instance, i) => chatRequests(instance) > (before[i] ?? 0))
    if (instance !== undefined) return instance
    await pause(10)
  }
}

interface Balancer {
  httpPort: number
  httpsPort: number
  /** The origin a browser on the balancer has. */
  origin: string
  /** The self-signed certificate, trusted by this test's clients. */
  ca: Buffer
  /** nginx's access log, as the template writes it. */
  accessLog: string
  stop: () => Promise<void>
}

/**
 * nginx with the committed template, rendered as the image renders it, inside a main config
 * that stands for the image's own nginx.conf (which includes conf.d in its http block), with
 * this test's paths for everything nginx writes.
 */
async function startBalancer (t: Test, nginx: string, openssl: string, upstreams: string[]): Promise<Balancer> {
  const dir = tempDir(t, 'canopy-nginx-')
  // nginx's workers run as nobody when the test runs as root.
  chmodSync(dir, 0o755)
  const certificate = join(dir, 'fullchain.pem')
  const key = join(dir, 'privkey.pem')
  const made = spawnSync(openssl, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost', '-days', '1', '-keyout', key, '-out', certificate], { encoding: 'utf8' })
  if (made.status !== 0) throw new Error(`openssl: ${made.stderr}`)

  // Ports found free may be taken before nginx binds them (by connections of tests running
  // alongside): then it starts again on others.
  for (let attempt = 1; ; attempt++) {
    const [httpPort, httpsPort] = [await freePort(), await freePort()]
    const stop = await startNginx(t, nginx, dir, { httpPort, httpsPort, certificate, key, upstreams })
    if (stop !== undefined) return { httpPort, httpsPort, origin: `https://localhost:${httpsPort}`, ca: readFileSync(certificate), accessLog: join(dir, 'access.log'), stop }
    if (attempt === 5) throw new Error('nginx found its ports taken five times')
  }
}

/** nginx on these ports, once its HTTPS port takes connections; undefined when a port was taken. */
async function startNginx (t: Test, nginx: string, dir: string, site: { httpPort: number, httpsPort: number, certificate: string, key: string, upstreams: string[] }): Promise<(() => Promise<void>) | undefined> {
  const { httpPort, httpsPort, certificate, key, upstreams } = site
  const siteFile = join(dir, 'default.conf')
  writeFileSync(siteFile, renderTemplate(readFileSync(templateFile, 'utf8'), {
    CANOPY_INSTANCE_1: upstreams[0] ?? '',
    CANOPY_INSTANCE_2: upstreams[1] ?? '',
    CANOPY_HTTP_PORT: String(httpPort),
    CANOPY_HTTPS_PORT: String(httpsPort),
    CANOPY_TLS_CERTIFICATE: certificate,
    CANOPY_TLS_CERTIFICATE_KEY: key,
    CANOPY_ACCESS_LOG: join(dir, 'access.log')
  }))
  const main = join(dir, 'nginx.conf')
  writeFileSync(main, [
    'worker_processes 1;',
    'events { worker_connections 256; }',
    'http {',
    // The main config's own log, in nginx's default format (the request line in full): the
    // template's servers must log elsewhere, in their own format.
    `  access_log ${join(dir, 'main-access.log')};`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${join(dir, kind)};`),
    // Another site on the HTTP port, included first, as Debian's stock site is: the
    // template's server must answer there all the same.
    `  server { listen ${httpPort}; server_name _; return 200 'the stock site'; }`,
    `  include ${siteFile};`,
    '}',
    ''
  ].join('\n'))

  const child = spawn(nginx, ['-e', 'stderr', '-p', dir, '-c', main, '-g', `daemon off; pid ${join(dir, 'nginx.pid')};`], { stdio: ['ignore', 'pipe', 'pipe'] })
  const balancer = watch(t, child)
  const stop = async (): Promise<void> => {
    if (!balancer.running()) return
    child.kill('SIGTERM')
    await balancer.exited
  }
  t.teardown(stop)
  // nginx says nothing when it is up: wait until its HTTPS port takes connections.
  for (;;) {
    if (!balancer.running()) {
      // Its last words (why it stopped) may still be on their way.
      if (!child.stderr.readableEnded) await once(child.stderr, 'end')
      if (/Address already in use/.test(balancer.stderr())) return undefined
      throw new Error(`nginx did not start: ${balancer.stderr()}`)
    }
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = netConnect(httpsPort, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => { resolve(false) })
    })
    if (accepted) break
    await pause(20)
  }
  return stop
}

/** Clients come from 127.0.0.2, so the instances can tell their address from nginx's (127.0.0.1). */
const clientAddress = '127.0.0.2'

interface Reply { status: number, headers: IncomingHttpHeaders, body: string }

async function call (url: string, options: { method?: string, cookie?: string, json?: unknown, headers?: Record<string, string>, ca?: Buffer } = {}): Promise<Reply> {
  const body = options.json === undefined ? undefined : JSON.stringify(options.json)
  const headers: Record<string, string> = { ...options.headers }
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (options.cookie !== undefined) headers.cookie = options.cookie
  const request = url.startsWith('https:') ? httpsRequest : httpRequest
  return await new Promise<Reply>((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers, ca: options.ca, family: 4, localAddress: clientAddress }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }) })
    })
    req.on('error', reject)
    req.end(body)
  })
}

function openSocket (balancer: Balancer, query: string, headers: Record<string, string>): WebSocket {
  return new WebSocket(`wss://localhost:${balancer.httpsPort}/chat?${query}`, { headers, ca: balancer.ca, family: 4, localAddress: clientAddress })
}

/** The HTTP status that refused a /chat upgrade; fails if the socket opens. */
async function refusedWith (socket: WebSocket): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    socket.once('unexpected-response', (request, response) => {
      resolve(response.statusCode ?? 0)
      request.destroy()
    })
    socket.once('open', () => { socket.close(); reject(new Error('the socket opened')) })
    socket.on('error', reject)
  })
}

const topic = 'lobby'
/** Publishes a user keeps unanswered at once, as a chatty client does. */
const publishWindow = 4

/**
 * A user at the chat through the balancer, as the page behaves: one socket at a time; on
 * each (re)connection it subscribes to the topic with `since` the last message it holds,
 * resends what was never acked with the same refs, and keeps `publishWindow` publishes in flight.
 */
class Chatter {
  /** Every message of the topic this user got, in the order it got them. */
  readonly received: MessageFrame[] = []
  /** ref → the id its ack gave. */
  readonly acked = new Map<string, number>()
  /** Sent on the current socket, not answered yet. */
  readonly inFlight = new Set<string>()
  /** To send again on the next socket: unanswered when a socket closed, or answered unavailable. */
  private readonly resend: string[] = []
  private readonly faults: string[] = []
  private readonly wakers: Array<() => void> = []
  private sent = 0
  /** Publishes sent again on a later socket, and those answered unavailable first. */
  resent = 0
  unavailable = 0
  private allowed = 0
  private client: ChatClient | undefined
  subscribed = false

  constructor (readonly name: string, private readonly session: { cookie: string, ticket: string }) {}

  ref (i: number): string { return `${this.name}-${i}` }
  text (ref: string): string { return `${ref.replace('-', ' says ')}` }
  get lastId (): number { return this.received.at(-1)?.id ?? 0 }
  has (ref: string): boolean { return this.received.some((message) => message.text === this.text(ref)) }

  /** Opens /chat through the balancer and follows the topic until the socket closes. */
  async join (balancer: Balancer): Promise<{ closed: Promise<number> }> {
    const socket = openSocket(balancer, new URLSearchParams({ ticket: this.session.ticket }).toString(), { cookie: this.session.cookie, origin: balancer.origin })
    const client = new ChatClient(socket)
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => { resolve() })
      socket.once('error', reject)
    })
    // A socket opens on `general`; the topic follows, from where this user stopped.
    const opened = await client.next()
    if (opened.type !== 'subscribed' || opened.topic !== 'general') throw new Error(`first frame: ${JSON.stringify(opened)}`)
    this.client = client
    this.subscribed = false
    client.send({ type: 'subscribe', topic, since: this.lastId })
    return { closed: this.follow(client) }
  }

  /** Lets this user send its messages up to `count`, `publishWindow` in flight at a time. */
  allow (count: number): void {
    this.allowed = count
    this.fill()
  }

  /** Resolves once `ready` holds; rejects on anything a client should never see. */
  async until (ready: () => boolean): Promise<void> {
    for (;;) {
      if (this.faults.length > 0) throw new Error(`${this.name}: ${this.faults.join('; ')}`)
      if (ready()) return
      await new Promise<void>((resolve) => { this.wakers.push(resolve) })
    }
  }

  private async follow (client: ChatClient): Promise<number> {
    for (;;) {
      let frame: ServerFrame
      try {
        frame = await client.next()
      } catch {
        break
      }
      this.take(frame)
      for (const wake of this.wakers.splice(0)) wake()
    }
    this.resend.unshift(...this.inFlight)
    this.inFlight.clear()
    this.subscribed = false
    for (const wake of this.wakers.splice(0)) wake()
    return (await client.closed).code
  }

  private take (frame: ServerFrame): void {
    if (frame.type === 'subscribed' && frame.topic === topic) {
      for (const message of frame.history) this.receive(message)
      if (frame.truncated === true) {
        this.client?.send({ type: 'subscribe', topic, since: this.lastId })
      } else {
        this.subscribed = true
        this.fill()
      }
    } else if (frame.type === 'message' && frame.topic === topic) {
      this.receive(frame)
    } else if (frame.type === 'ack') {
      const first = this.acked.get(frame.ref)
      if (first !== undefined && first !== frame.id) this.faults.push(`${frame.ref} acked as ${first}, then as ${frame.id}`)
      this.acked.set(frame.ref, frame.id)
      this.inFlight.delete(frame.ref)
      this.fill()
    } else if (frame.type === 'error' && frame.code === 'unavailable' && frame.ref !== undefined) {
      // Only while an instance shuts down, here: the next socket sends it again.
      this.inFlight.delete(frame.ref)
      this.resend.push(frame.ref)
      this.unavailable += 1
    } else if (frame.type === 'error') {
      this.faults.push(`error ${frame.code}: ${frame.message}`)
    }
  }

  private receive (message: MessageFrame): void {
    if (message.id <= this.lastId) this.faults.push(`message ${message.id} after ${this.lastId}`)
    this.received.push(message)
  }

  private fill (): void {
    const client = this.client
    if (client === undefined || !this.subscribed || client.socket.readyState !== WebSocket.OPEN) return
    while (this.inFlight.size < publishWindow) {
      const again = this.resend.shift()
      if (again !== undefined) this.resent += 1
      const ref = again ?? (this.sent < this.allowed ? this.ref(this.sent++) : undefined)
      if (ref === undefined) return
      this.inFlight.add(ref)
      client.send({ type: 'publish', topic, text: this.text(ref), ref })
    }
  }
}

/**
 * A psql script run as psql runs it, for what deploy/postgres/canopy-role.sql uses: `-v`
 * variables as :'literal' and :"identifier", statements ending a line with `;`, `\connect`.
 * No psql comes with the embedded Postgres.
 */
async function runPsqlScript (script: string, variables: Record<string, string>, serverUrl: string, database: string): Promise<void> {
  const interpolate = (text: string): string => text.replace(/:(['"])(\w+)\1/g, (_, quote: string, name: string) => {
    const value = variables[name]
    if (value === undefined) throw new Error(`the script uses :${name}, which is not set`)
    return quote + value.replaceAll(quote, quote + quote) + quote
  })
  const connect = async (name: string): Promise<pg.Client> => {
    const url = new URL(serverUrl)
    url.pathname = `/${name}`
    const client = new pg.Client({ connectionString: url.href })
    await client.connect()
    return client
  }
  let client = await connect(database)
  try {
    let statement = ''
    for (const line of script.split('\n')) {
      if (line.trim().startsWith('--') || line.trim() === '') continue
      const meta = /^\\(?:connect|c)\s+(.+)$/.exec(line.trim())
      if (meta?.[1] !== undefined) {
        await client.end()
        client = await connect(interpolate(meta[1]).replace(/^"(.*)"$/, '$1'))
        continue
      }
      statement += `${line}\n`
      if (line.trimEnd().endsWith(';')) {
        await client.query(interpolate(statement))
        statement = ''
      }
    }
    if (statement.trim() !== '') throw new Error(`a statement without its ;: ${statement}`)
  } finally {
    await client.end()
  }
}

const nginx = findTool('nginx')
const openssl = findTool('openssl')
const noTools = nginx === undefined
  ? 'skipped: nginx is not installed (apt-get install nginx; .ci/run does)'
  : openssl === undefined ? 'skipped: openssl is not installed' : false

t.test('two instances behind the committed nginx config chat over TLS, and one stopping loses nothing', { skip: noTools }, async (t) => {
  if (nginx === undefined || openssl === undefined) return
  const postgres = await startPostgres(t)
  // As the Postgres container's init does: Canopy's own role, owner of its database and no
  // more. The instances and migrate log in as it, never as a superuser.
  const role = `canopy_${randomBytes(4).toString('hex')}`
  const database = new URL(postgres.url).pathname.slice(1)
  await runPsqlScript(readFileSync(join(root, 'deploy', 'postgres', 'canopy-role.sql'), 'utf8'), { role, password: 'a role\'s "password"', database }, postgres.url, 'postgres')
  const appUrl = new URL(postgres.url)
  appUrl.username = role
  appUrl.password = encodeURIComponent('a role\'s "password"')
  const asRole = new pg.Client({ connectionString: appUrl.href })
  await asRole.connect()
  t.teardown(async () => { await asRole.end() })
  t.same((await asRole.query('SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user')).rows, [{ rolsuper: false, rolcreaterole: false, rolcreatedb: false }], 'the role is no superuser, makes no roles, no databases')
  await t.rejects(asRole.query('CREATE ROLE intruder'), /permission denied/, 'CREATE ROLE is refused to it')
  const env = { NODE_ENV: 'production', SESSION_SECRET: 'a-session-secret-of-forty-characters-000', TRUST_PROXY: '127.0.0.1', DATABASE_URL: appUrl.href, DATA_DIR: tempDir(t) }

  // As compose does: the one-shot migrate, then the instances.
  const migrate = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/migrate.ts'], { cwd: root, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' })
  t.equal(migrate.status, 0, 'migrated first', { stderr: migrate.stderr })
  t.same((await postgres.admin('SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = \'public\'')).rows, [{ tableowner: role }], 'as the role, which owns the tables')
  const instances = [startInstance(t, env), startInstance(t, env)]
  const urls = await Promise.all(instances.map(async (instance) => await instance.listening))
  const balancer = await startBalancer(t, nginx, openssl, urls.map((url) => new URL(url).host))
  const site = `https://localhost:${balancer.httpsPort}`

  const redirect = await call(`http://localhost:${balancer.httpPort}/api/me?x=1`)
  t.equal(redirect.status, 301, 'plain HTTP is redirected')
  t.equal(redirect.headers.location, 'https://localhost/api/me?x=1', 'to the same path over HTTPS')

  const direct = await call(`${urls[0] ?? ''}/api/register`, { method: 'POST', json: { username: 'plain', password: 'correct horse' } })
  t.equal(direct.status, 403, 'a login straight to an instance, over plain HTTP, is refused')
  t.equal(JSON.parse(direct.body).error, 'insecure_transport', 'as insecure_transport')

  const sessions: Array<{ cookie: string, ticket: string }> = []
  for (const username of ['alice', 'bob']) {
    const registered = await call(`${site}/api/register`, { method: 'POST', json: { username, password: 'correct horse' }, ca: balancer.ca })
    t.equal(registered.status, 201, `${username} registers through the balancer`, { body: registered.body })
    t.ok(sessionCookieIsSecure(registered, { production: true }), 'with a Secure session cookie')
    // A forged X-Forwarded-For is replaced by the balancer with the client's own address.
    const loggedIn = await call(`${site}/api/login`, { method: 'POST', json: { username, password: 'correct horse' }, headers: { 'x-forwarded-for': '203.0.113.9' }, ca: balancer.ca })
    t.equal(loggedIn.status, 200, `${username} logs in through the balancer`, { body: loggedIn.body })
    const cookie = sessionCookie(loggedIn, { production: true })
    t.ok(sessionCookieIsSecure(loggedIn, { production: true }), 'with a Secure session cookie')
    const me = await call(`${site}/api/me`, { cookie, ca: balancer.ca })
    t.equal(me.status, 200, 'and has a ticket for /chat')
    sessions.push({ cookie, ticket: (JSON.parse(me.body) as { wsTicket: string }).wsTicket })
  }
  const logins = instances.flatMap((instance) => instance.logs).filter((entry) => entry.msg === 'request completed' && entry.req?.url === '/api/login')
  t.same(logins.map((entry) => [entry.req?.host, entry.req?.remoteAddress]), [[`localhost:${balancer.httpsPort}`, clientAddress], [`localhost:${balancer.httpsPort}`, clientAddress]],
    'the instances see the host the browser used and the client\'s address')

  const [aliceSession, bobSession] = sessions
  if (aliceSession === undefined || bobSession === undefined) throw new Error('two sessions')
  const forged = openSocket(balancer, new URLSearchParams({ ticket: aliceSession.ticket }).toString(),
    { cookie: aliceSession.cookie, origin: 'https://evil.example', 'x-forwarded-host': 'evil.example' })
  t.equal(await refusedWith(forged), 403, 'a forged X-Forwarded-Host does not make another origin the site\'s own')

  const alice = new Chatter('alice', aliceSession)
  const bob = new Chatter('bob', bobSession)
  let before = instances.map(chatRequests)
  const { closed: aliceClosed } = await alice.join(balancer)
  const aliceOn = await servedBy(instances, before)
  before = instances.map(chatRequests)
  const { closed: bobClosed } = await bob.join(balancer)
  const bobOn = await servedBy(instances, before)
  t.not(instances.indexOf(aliceOn), instances.indexOf(bobOn), 'round robin: one socket on each instance')
  let bobClosedWith: number | undefined
  void bobClosed.then((code) => { bobClosedWith = code })

  // Both ways, across the two instances.
  await alice.until(() => alice.subscribed)
  await bob.until(() => bob.subscribed)
  alice.allow(1)
  await bob.until(() => bob.has(alice.ref(0)))
  bob.allow(1)
  await alice.until(() => alice.has(bob.ref(0)))

  // Both keep talking; alice's instance stops while her publishes are in flight.
  const total = 40
  alice.allow(total)
  bob.allow(total)
  await alice.until(() => alice.acked.size >= 10)
  t.ok(alice.inFlight.size > 0, `${alice.inFlight.size} of alice's publishes in flight at the stop`)
  aliceOn.child.kill('SIGTERM')
  t.equal(await aliceClosed, 1001, 'her socket closes with 1001')
  t.same(await aliceOn.exited, [0, null], 'the instance exits 0')

  before = instances.map(chatRequests)
  await alice.join(balancer)
  t.equal(await servedBy(instances, before), bobOn, 'she reconnects through the balancer, to the instance still up')

  await alice.until(() => alice.acked.size === total)
  t.comment(`alice resent ${alice.resent} publish(es) after the stop, ${alice.unavailable} of them answered unavailable first`)
  await bob.until(() => bob.acked.size === total)
  const stored = (await postgres.admin('SELECT id::int AS id, author, text, ref FROM messages WHERE topic = $1 ORDER BY id', [topic])).rows as Array<{ id: number, author: string, text: string, ref: string }>
  t.equal(stored.length, 2 * total, 'each publish stored once, resends included')
  const lastId = stored.at(-1)?.id ?? 0
  for (const user of [alice, bob]) {
    await user.until(() => user.lastId >= lastId)
    t.same(user.received.map(({ id, author, text }) => ({ id, author, text })), stored.map(({ id, author, text }) => ({ id, author, text })),
      `${user.name} has every message once, in order`)
    const lost = [...user.acked].filter(([ref, id]) => !stored.some((row) => row.ref === ref && row.id === id && row.author === user.name))
    t.same(lost, [], `every publish acked to ${user.name} is stored under its id`)
  }
  t.equal(bobClosedWith, undefined, 'bob\'s socket, on the other instance, stayed open')

  bobOn.child.kill('SIGTERM')
  t.same(await bobOn.exited, [0, null], 'the other instance stops cleanly too')
  t.equal(await bobClosed, 1001, 'closing bob\'s socket with 1001')

  const accessLog = readFileSync(balancer.accessLog, 'utf8')
  t.match(accessLog, /"GET \/chat HTTP\/1\.1" 101 /, 'nginx logged the sockets by their path')
  t.notOk(sessions.some((session) => accessLog.includes(session.ticket)), 'and no ticket')
})

/** A stand-in instance on 127.0.0.1: counts what reaches it and answers as `answer` says. */
async function standIn (t: Test, name: string, answer: 'ok' | 'shutting-down'): Promise<{ address: string, requests: string[] }> {
  const requests: string[] = []
  const sockets = new WebSocketServer({ noServer: true })
  const server = createHttpServer((req, res) => {
    requests.push(`${req.method ?? ''} ${req.url ?? ''}`)
    if (answer === 'ok') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ instance: name }))
    } else {
      // As Fastify answers while it closes (return503OnClosing), or an instance that is not ready.
      res.writeHead(503, { 'content-type': 'application/json', connection: 'close' }).end('{"error":"unavailable","message":"Service unavailable; try again"}')
    }
  })
  server.on('upgrade', (req, socket, head) => {
    requests.push(`UPGRADE ${req.url ?? ''}`)
    if (answer === 'ok') {
      sockets.handleUpgrade(req, socket, head, (ws) => { ws.send(name) })
    } else {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
    }
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  t.teardown(async () => {
    for (const client of sockets.clients) client.terminate()
    server.closeAllConnections()
    await new Promise((resolve) => { server.close(resolve) })
  })
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, requests }
}

/** What `openssl s_client` makes of a TLS handshake with these options. */
function handshake (openssl: string, port: number, options: string[]): { ok: boolean, output: string } {
  const run = spawnSync(openssl, ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', ...options], { input: '', encoding: 'utf8', timeout: 30_000 })
  const output = run.stdout + run.stderr
  // The session block's `Cipher :` line, or (TLS 1.3, whose session block may be printed before
  // the server's post-handshake messages arrive) the `New, TLSv1.3, Cipher is …` line.
  const agreed = /^\s*Cipher\s*:\s*(?!0000)\S+/m.test(output) || /^New, TLSv1\.[23], Cipher is (?!\(NONE\))\S+/m.test(output)
  return { ok: run.status === 0 && agreed, output }
}

t.test('the committed nginx config, in front of stand-in instances: retries, errors, logs, TLS, default server', { skip: noTools }, async (t) => {
  if (nginx === undefined || openssl === undefined) return

  t.test('an instance that answers 503 (shutting down) is passed over: the request goes to the next', async (t) => {
    const down = await standIn(t, 'down', 'shutting-down')
    const up = await standIn(t, 'up', 'ok')
    const balancer = await startBalancer(t, nginx, openssl, [down.address, up.address])
    const site = `https://localhost:${balancer.httpsPort}`
    // Until the instance that is going away has been asked once (round robin asks it first).
    while (down.requests.length === 0) {
      const reply = await call(`${site}/api/topics/lobby/read`, { method: 'PUT', json: { id: 1 }, ca: balancer.ca })
      t.equal(reply.status, 200, 'a PUT …/read is answered by the instance still up')
      t.same(JSON.parse(reply.body), { instance: 'up' })
    }
    t.same(down.requests, ['PUT /api/topics/lobby/read'], 'after the other answered it 503')

    const downToo = await standIn(t, 'down', 'shutting-down')
    const upToo = await standIn(t, 'up', 'ok')
    const second = await startBalancer(t, nginx, openssl, [downToo.address, upToo.address])
    while (downToo.requests.length === 0) {
      const socket = new WebSocket(`wss://localhost:${second.httpsPort}/chat?ticket=x`, { ca: second.ca, family: 4, localAddress: clientAddress })
      const first = await new Promise<string>((resolve, reject) => {
        socket.once('message', (data: Buffer) => { resolve(data.toString()) })
        socket.once('unexpected-response', (_request, response) => { reject(new Error(`refused with ${response.statusCode ?? 0}`)) })
        socket.once('error', reject)
      })
      t.equal(first, 'up', 'a /chat upgrade opens on the instance still up')
      socket.close()
    }
    t.same(downToo.requests, ['UPGRADE /chat?ticket=x'], 'after the other refused it with 503')
  })

  t.test('with every instance down: Canopy\'s JSON 503, no nginx version; the access log has no query strings', async (t) => {
    const balancer = await startBalancer(t, nginx, openssl, [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`])
    const site = `https://localhost:${balancer.httpsPort}`
    const reply = await call(`${site}/api/me`, { ca: balancer.ca })
    t.equal(reply.status, 503, '503')
    t.match(reply.headers['content-type'], /^application\/json/, 'as JSON')
    t.same(JSON.parse(reply.body), { error: 'unavailable', message: 'Service unavailable; try again' }, 'the body an instance gives for 503')
    t.equal(reply.headers['retry-after'], '5', 'with Retry-After')
    t.notMatch(JSON.stringify(reply.headers) + reply.body, /nginx\/\d|<html/i, 'no version, no HTML page')

    const secret = 'the-ticket-of-a-socket'
    const refused = await refusedWith(new WebSocket(`wss://localhost:${balancer.httpsPort}/chat?ticket=${secret}&topic=lobby`, { ca: balancer.ca, family: 4, localAddress: clientAddress }))
    t.equal(refused, 503, 'a /chat upgrade gets 503 too')
    const redirect = await call(`http://localhost:${balancer.httpPort}/chat?ticket=${secret}`)
    t.equal(redirect.status, 301)

    // nginx writes a request's log line once it has answered it: both are answered.
    const log = readFileSync(balancer.accessLog, 'utf8')
    t.match(log, /"GET \/chat HTTP\/1\.1" 503 /, 'the upgrade is logged by its path')
    t.match(log, /"GET \/chat HTTP\/1\.1" 301 /, 'so is the plain HTTP request')
    t.notMatch(log, /ticket/, 'without its query string')
    t.equal(readFileSync(join(dirname(balancer.accessLog), 'main-access.log'), 'utf8'), '', 'nothing goes to the main config\'s log, in nginx\'s default format')
  })

  t.test('TLS 1.2 offers only forward-secret suites; plain HTTP redirects whatever the Host', async (t) => {
    const up = await standIn(t, 'up', 'ok')
    const balancer = await startBalancer(t, nginx, openssl, [up.address, up.address])
    const staticRsa = handshake(openssl, balancer.httpsPort, ['-tls1_2', '-cipher', 'kRSA'])
    t.notOk(staticRsa.ok, 'a TLS 1.2 client offering only static-RSA key exchange is refused', { output: staticRsa.output })
    const cbc = handshake(openssl, balancer.httpsPort, ['-tls1_2', '-cipher', 'ECDHE+SHA1:ECDHE+SHA256:ECDHE+SHA384:!AESGCM:!CHACHA20'])
    t.notOk(cbc.ok, 'so is one offering only CBC suites', { output: cbc.output })
    const ecdhe = handshake(openssl, balancer.httpsPort, ['-tls1_2', '-cipher', 'ECDHE'])
    t.ok(ecdhe.ok, 'ECDHE over TLS 1.2 is taken', { output: ecdhe.output })
    t.ok(handshake(openssl, balancer.httpsPort, ['-tls1_3']).ok, 'and TLS 1.3')
    t.notOk(handshake(openssl, balancer.httpsPort, ['-tls1_1']).ok, 'TLS 1.1 is not')

    for (const host of ['chat.example.com', 'localhost']) {
      const reply = await call(`http://127.0.0.1:${balancer.httpPort}/api/me`, { headers: { host } })
      t.equal(reply.status, 301, `Host ${host}: the redirect, not the stock site on the same port`)
      t.equal(reply.headers.location, `https://${host}/api/me`)
    }
  })
})

/** Past this, an install that needs the registry is given up and the test skipped. */
const npmInstallTimeoutMs = 60_000
const networkErrors = /\b(ENOTCACHED|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ENETUNREACH)\b/

t.test('the Dockerfile\'s steps, outside a container: a production install without dev dependencies migrates, starts and is healthy', async (t) => {
  const files = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' })
  if (files.status !== 0) {
    await t.skip(`the build context is the repository's files, and git cannot list them: ${files.stderr}`, () => {})
    return
  }
  const stages = parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'))
  t.same(stages.map((stage) => stage.name), ['build', undefined], 'a build stage, then the image')
  const [buildStage, imageStage] = stages
  if (buildStage === undefined || imageStage === undefined) return
  t.same(instructionArgs(imageStage, 'CMD'), ['["node", "dist/server/server.js"]'], 'runs the built server')
  t.same(instructionArgs(imageStage, 'EXPOSE'), ['8800'], 'on port 8800')
  t.match(instructionArgs(imageStage, 'USER'), [/^(?!root$|0$)\S+$/], 'runs as a user other than root')
  const healthcheck = /CMD\s+(\[.*\])$/.exec(instructionArgs(imageStage, 'HEALTHCHECK')[0] ?? '')?.[1]
  t.ok(healthcheck, 'a HEALTHCHECK')
  const imageEnv = Object.fromEntries(instructionArgs(imageStage, 'ENV').flatMap((args) => args.split(/\s+/).map((pair) => pair.split('=') as [string, string])))
  t.match(imageEnv, { NODE_ENV: 'production', HOST: '0.0.0.0', PORT: '8800' }, 'in production, on every interface')

  // The build context, as `docker build .` sends it: the repository's files, not its local state.
  const context = tempDir(t, 'canopy-context-')
  for (const file of files.stdout.split('\0').filter((file) => file !== '' && existsSync(join(root, file)))) {
    mkdirSync(dirname(join(context, file)), { recursive: true })
    cpSync(join(root, file), join(context, file))
  }
  const dirs = new Map<string, string>()
  /** The last stage's directory: the image's /app. */
  let imageDir = ''
  const npmEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' }
  for (const [index, stage] of stages.entries()) {
    const dir = tempDir(t, `canopy-stage-${index}-`)
    imageDir = dir
    if (stage.name !== undefined) dirs.set(stage.name, dir)
    let workdir = '/'
    for (const { keyword, args } of stage.instructions) {
      if (keyword === 'WORKDIR') workdir = args
      if (keyword === 'COPY') replayCopy(args, workdir, dir, context, dirs)
      if (keyword !== 'RUN') continue
      for (const command of runCommands(args)) {
        if (/^npm ci\b/.test(command) && !command.includes('--omit=dev')) {
          // The dev install: this repository's own node_modules.
          symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'))
        } else if (/^npm ci\b/.test(command)) {
          // From the npm cache (CI's own npm ci fills it); the registry only for what it lacks.
          const install = spawnSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'],
            { cwd: dir, env: { ...npmEnv, ...imageEnv }, encoding: 'utf8', timeout: npmInstallTimeoutMs })
          const failure = install.error?.message ?? install.stderr.split('\n').find((line) => line.includes('npm error code')) ?? ''
          if (install.status !== 0 && (install.error !== undefined || networkErrors.test(failure))) {
            await t.skip(`npm ci --omit=dev needs packages the npm cache lacks, and the registry did not answer in time: ${failure}`, () => {})
            return
          }
          t.equal(install.status, 0, 'npm ci --omit=dev', { stderr: install.stderr })
        } else if (command === 'npm run build') {
          const build = spawnSync('npm', ['run', 'build'], { cwd: dir, env: npmEnv, encoding: 'utf8' })
          t.equal(build.status, 0, 'npm run build', { output: build.stdout + build.stderr })
        } else {
          t.comment(`not replayed: RUN ${command}`)
        }
      }
    }
  }
  for (const devOnly of ['typescript', 'tsx', 'tap', 'drizzle-kit']) {
    t.notOk(existsSync(join(imageDir, 'node_modules', devOnly)), `no ${devOnly} in the image's node_modules`)
  }
  t.ok(existsSync(join(imageDir, 'node_modules', 'fastify')), 'the production dependencies are there')

  const runEnv = { ...npmEnv, ...imageEnv, HOST: '127.0.0.1', PORT: '0', DATA_DIR: join(imageDir, 'data'), SESSION_SECRET: 'a-session-secret-of-forty-characters-000' }
  const migrated = spawnSync('npm', ['run', '--silent', 'db:migrate'], { cwd: imageDir, env: runEnv, encoding: 'utf8' })
  t.equal(migrated.status, 0, 'npm run db:migrate, without TypeScript', { stderr: migrated.stderr })
  t.match(migrated.stdout, /^canopy: applied \d+ migration\(s\) to the embedded database in /m, 'says what it applied')

  const server = watch(t, spawn('npm', ['start'], { cwd: imageDir, env: runEnv, stdio: ['ignore', 'pipe', 'pipe'] }))
  // npm runs the server as a child: the signal goes to the server, as the pid in its log says.
  const serverPid = (): number | undefined => server.logs.find((entry) => entry.pid !== undefined)?.pid
  t.teardown(async () => {
    if (!server.running()) return
    process.kill(serverPid() ?? server.child.pid ?? 0, 'SIGTERM')
    await server.exited
  })
  const url = await server.listening
  t.equal((await call(`${url}/healthz`)).status, 200, '/healthz answers 200')

  const check = JSON.parse(healthcheck ?? '[]') as string[]
  const probe = async (): Promise<number | null> => {
    const [command = '', ...args] = check
    const run = spawn(command, args, { cwd: imageDir, env: { ...runEnv, PORT: new URL(url).port }, stdio: 'ignore' })
    return (await once(run, 'exit') as [number | null])[0]
  }
  t.equal(await probe(), 0, 'the image\'s HEALTHCHECK passes')
  const pid = serverPid()
  if (pid === undefined) throw new Error('the server logged no pid')
  process.kill(pid, 'SIGTERM')
  t.same(await server.exited, [0, null], 'npm start ends with the server, exit 0, on SIGTERM')
  t.equal(await probe(), 1, 'and fails once the server is gone')
})

t.test('compose.yaml gives the nginx template every value it uses', async (t) => {
  const compose = readFileSync(join(root, 'compose.yaml'), 'utf8')
  const template = readFileSync(templateFile, 'utf8')
  t.match(compose, /- \.\/deploy\/nginx\/default\.conf\.template:\/etc\/nginx\/templates\/default\.conf\.template:ro/, 'mounts the template the test runs')
  t.match(compose, /NGINX_ENVSUBST_FILTER: CANOPY_\n/, 'only CANOPY_ variables are replaced')
  for (const name of templateVariables(template)) t.match(compose, new RegExp(`\\n\\s+${name}: \\S`), `sets ${name}`)
  const upstreams = [...template.matchAll(/server \$\{CANOPY_INSTANCE_(\d+)\}/g)].map((match) => match[1])
  t.same(upstreams, upstreams.map((_, i) => String(i + 1)), 'instances numbered from 1 in the upstream')
  t.ok(upstreams.length >= 2, `${upstreams.length} instances in the upstream`)
  for (const n of upstreams) {
    t.match(compose, new RegExp(`\\n  canopy-${n}:\\n`), `a service canopy-${n}`)
    t.match(compose, new RegExp(`CANOPY_INSTANCE_${n}: canopy-${n}:8800\\n`), `the balancer points at canopy-${n}`)
  }
  // What every Canopy container (the instances and migrate) shares: the x-canopy block.
  const shared = /\nx-canopy: &canopy\n((?: {2}.*\n|\s*\n)+)/.exec(compose)?.[1] ?? ''
  for (const setting of [/\n {2}read_only: true\n/, /\n {2}cap_drop: \[ALL\]\n/, /\n {2}mem_limit: \S+/, /no-new-privileges:true/]) {
    t.match(`\n${shared}`, setting, `every Canopy container: ${String(setting)}`)
  }
  t.match(shared, /DATABASE_URL: postgres:\/\/canopy:\$\{CANOPY_DB_PASSWORD/, 'Canopy logs in as its own role')
  t.match(compose, /POSTGRES_USER: postgres\n/, 'the superuser is another')
  t.match(compose, /- \.\/deploy\/postgres\/init-canopy-role\.sh:\/docker-entrypoint-initdb\.d\/\S+\.sh:ro/, 'the init script makes the role')
  t.match(compose, /- \.\/deploy\/postgres\/canopy-role\.sql:\/canopy\/canopy-role\.sql:ro/, 'from the SQL this test runs')
  t.match(readFileSync(join(root, 'deploy', 'postgres', 'init-canopy-role.sh'), 'utf8'), /-f \/canopy\/canopy-role\.sql/, 'where the init script reads it')
})

const systemdAnalyze = findTool('systemd-analyze')

t.test('the systemd unit passes systemd-analyze verify', { skip: systemdAnalyze === undefined ? 'skipped: systemd-analyze is not installed (Debian\'s systemd package)' : false }, async (t) => {
  if (systemdAnalyze === undefined) return
  const dir = tempDir(t, 'canopy-systemd-')
  cpSync(join(root, 'deploy', 'systemd', 'canopy@.service'), join(dir, 'canopy@.service'))
  // An instance of the template, as `systemctl start canopy@8801` makes it.
  const verified = spawnSync(systemdAnalyze, ['verify', join(dir, 'canopy@8801.service')], { encoding: 'utf8' })
  t.equal(verified.status, 0, 'exit 0')
  t.equal(verified.stderr.split('\n').filter((line) => line.includes('canopy@')).join('\n'), '', 'no complaint about the unit')
  const unit = readFileSync(join(root, 'deploy', 'systemd', 'canopy@.service'), 'utf8')
  for (const setting of [/^User=canopy$/m, /^EnvironmentFile=\/etc\/canopy\/canopy\.env$/m, /^Restart=always$/m, /^StandardOutput=journal$/m, /^Environment=NODE_ENV=production PORT=%i$/m]) {
    t.match(unit, setting)
  }
})
