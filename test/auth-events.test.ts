import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import t from 'tap'
import { tempDir, uniqueName } from './helpers/app.js'

interface LogLine { msg?: string, auth?: string, user?: string, address?: string, attempt?: string, everywhere?: boolean, raw: string }

t.test('register, login, a failed or limited attempt and logout are info lines and counts of canopy_auth_total', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', PORT: '0', METRICS_PORT: '0', LOGIN_ATTEMPTS: '1', KEEPALIVE_INTERVAL: '0', DATA_DIR: tempDir(t) },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const exited = once(child, 'exit')
  t.teardown(async () => {
    child.kill('SIGTERM')
    await exited
  })
  const lines: LogLine[] = []
  const waiters: Array<() => void> = []
  createInterface({ input: child.stdout }).on('line', (raw) => {
    lines.push({ ...JSON.parse(raw) as Omit<LogLine, 'raw'>, raw })
    for (const wake of waiters.splice(0)) wake()
  })
  const waitFor = async (matches: (line: LogLine) => boolean): Promise<LogLine> => {
    for (;;) {
      const found = lines.find(matches)
      if (found !== undefined) return found
      await new Promise<void>((resolve) => { waiters.push(resolve) })
    }
  }
  const urlIn = async (pattern: RegExp): Promise<string> => pattern.exec((await waitFor((line) => pattern.test(line.raw))).raw)?.[0] ?? ''
  const baseUrl = await urlIn(/http:\/\/127\.0\.0\.1:\d+(?=")/)
  const metricsUrl = await urlIn(/http:\/\/127\.0\.0\.1:\d+\/metrics/)

  const password = `secret password ${process.pid}`
  const post = async (path: string, body?: unknown, cookie?: string): Promise<Response> => await fetch(`${baseUrl}${path}`, {
    method: 'POST',
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(cookie === undefined ? {} : { cookie }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const [alice, bob] = [uniqueName('alice'), uniqueName('bob')]
  t.equal((await post('/api/register', { username: alice, password })).status, 201)
  t.equal((await post('/api/register', { username: bob, password })).status, 201)
  t.equal((await post('/api/login', { username: alice, password: 'wrong password' })).status, 401)
  t.equal((await post('/api/login', { username: alice, password })).status, 429, 'LOGIN_ATTEMPTS is 1')
  const login = await post('/api/login', { username: bob, password })
  t.equal(login.status, 200)
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? ''
  t.equal((await post('/api/logout', { everywhere: true }, cookie)).status, 204)

  const event = async (auth: string, user: string): Promise<LogLine> => await waitFor((line) => line.auth === auth && line.user === user)
  t.match(await event('registered', alice), { msg: 'auth: registered', address: '127.0.0.1' })
  t.match(await event('failed', alice), { msg: 'auth: failed', address: '127.0.0.1' })
  t.match(await event('limited', alice), { msg: 'auth: limited', attempt: 'login', address: '127.0.0.1' })
  t.match(await event('login', bob), { msg: 'auth: login', address: '127.0.0.1' })
  t.match(await event('logout', bob), { msg: 'auth: logout', everywhere: true, address: '127.0.0.1' })
  const secrets = [password, decodeURIComponent(cookie.split('=')[1] ?? '')]
  t.same(lines.filter((line) => secrets.some((secret) => line.raw.includes(secret))).map((line) => line.raw), [], 'no line holds the password or the cookie')

  const metrics = await (await fetch(metricsUrl)).text()
  const counts = Object.fromEntries([...metrics.matchAll(/^canopy_auth_total\{outcome="(\w+)"\} (\d+)$/gm)].map(([, outcome, count]) => [outcome, Number(count)]))
  t.same(counts, { registered: 2, login: 1, failed: 1, limited: 1, logout: 1 })
})
