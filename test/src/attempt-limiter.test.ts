import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { AttemptLimiter, loginLimits, registrationLimits } from '../../src/attempt-limiter.js'
import { buildTestApp, register, uniqueName } from '../helpers/app.js'
import { forEachEngine } from '../helpers/postgres.js'

const minuteMs = 60_000
const hourMs = 60 * minuteMs

forEachEngine(t, async (t, env) => {
  const app = await buildTestApp(t, env)
  const limiter = new AttemptLimiter(app.db)
  /** Ends the window of `key` now, as if its time had passed. */
  const endWindow = async (key: string): Promise<void> => {
    await app.db.query("UPDATE attempt_counters SET window_ends_at = now() - interval '1 millisecond' WHERE key = $1", [key])
  }

  await t.test('concurrent attempts are each counted once', async (t) => {
    const outcomes = await Promise.all(Array.from({ length: 20 }, async () => await limiter.count([{ key: 'concurrent', max: 5, windowMs: minuteMs }])))
    t.equal(outcomes.filter((retryAfterMs) => retryAfterMs === undefined).length, 5, 'exactly max are allowed')
    for (const retryAfterMs of outcomes.filter((wait) => wait !== undefined)) t.ok(retryAfterMs > 0 && retryAfterMs <= minuteMs, 'the others wait within the window')
  })

  await t.test('a window that has ended starts over', async (t) => {
    const limit = { key: 'ended', max: 1, windowMs: minuteMs }
    t.equal(await limiter.count([limit]), undefined)
    t.type(await limiter.count([limit]), 'number', 'over the limit')
    await endWindow('ended')
    t.equal(await limiter.count([limit]), undefined, 'allowed in the new window')
    t.type(await limiter.count([limit]), 'number', 'and counted in it')
  })

  await t.test('an attempt counts against every limit; the wait is the longest of those exceeded', async (t) => {
    const perName = { key: 'both\nname', max: 1, windowMs: minuteMs }
    const perAddress = { key: 'both', max: 2, windowMs: hourMs }
    t.equal(await limiter.count([perName, perAddress]), undefined)
    const overName = await limiter.count([perName, perAddress])
    t.ok(overName !== undefined && overName <= minuteMs, 'over the name limit only: its minute')
    const overBoth = await limiter.count([perName, perAddress])
    t.ok(overBoth !== undefined && overBoth > minuteMs && overBoth <= hourMs, 'over both: the hour')
    await endWindow('both\nname')
    t.ok((await limiter.count([perName, perAddress]) ?? 0) > minuteMs, 'a fresh name window does not lift the address limit')
  })

  await t.test('sweep deletes the counters whose window has ended, and only those', async (t) => {
    await limiter.count([{ key: 'sweep-ended', max: 1, windowMs: minuteMs }, { key: 'sweep-live', max: 1, windowMs: minuteMs }])
    await endWindow('sweep-ended')
    t.ok(await limiter.sweep() >= 1)
    const keys = (await app.db.query<{ key: string }>("SELECT key FROM attempt_counters WHERE key LIKE 'sweep-%'")).map((row) => row.key)
    t.same(keys, ['sweep-live'])
  })
})

t.test('the limits of a login and of a registration', async (t) => {
  const keys = (limits: Array<{ key: string, max: number }>) => limits.map(({ key, max }) => [key, max])
  t.same(keys(loginLimits({ ip: '2001:db8:1:2::9', name: 'Alice', attemptsPerMinute: 10 })), [
    ['login\n2001:db8:1:2::/64\nalice', 10],
    ['login\n2001:db8:1:2::/64', 100],
    ['login-name\nalice', 100]
  ], 'per /64 and name, per /64, per name; names without case')
  t.same(keys(loginLimits({ ip: '1.2.3.4', name: '1.2.3.4', attemptsPerMinute: 10 })).map(([key]) => key),
    ['login\n1.2.3.4\n1.2.3.4', 'login\n1.2.3.4', 'login-name\n1.2.3.4'], 'a name that looks like an address has a key of its own')
  t.same(keys(registrationLimits({ ip: '::ffff:10.0.0.1', attemptsPerHour: 20 })), [['register\n10.0.0.1', 20]])
})

/** Checks a 429 as docs/protocol.md says: Retry-After in whole seconds, the same wait in ms in the body. */
function assertLimited (t: Test, response: LightMyRequestResponse, windowMs: number, what: string): void {
  t.equal(response.statusCode, 429, what)
  const body = response.json<{ error: string, retryAfterMs: number }>()
  t.match(body, { error: 'too_many_requests', message: String, retryAfterMs: Number })
  t.ok(body.retryAfterMs > 0 && body.retryAfterMs <= windowMs, `retryAfterMs ${body.retryAfterMs} is within the window`)
  t.equal(response.headers['retry-after'], String(Math.ceil(body.retryAfterMs / 1000)), 'Retry-After is the same wait in seconds')
}

const login = async (app: FastifyInstance, username: string, password: string, remoteAddress: string) =>
  await app.inject({ method: 'POST', url: '/api/login', payload: { username, password }, remoteAddress })
const registration = async (app: FastifyInstance, remoteAddress: string) =>
  await app.inject({ method: 'POST', url: '/api/register', payload: { username: uniqueName(), password: 'password123' }, remoteAddress })

t.test('an IPv6 client is counted by its /64: 24 addresses of one /64 are one client', async (t) => {
  const app = await buildTestApp(t)
  const username = uniqueName()
  await register(app, username, 'password123')
  const statuses: number[] = []
  for (let i = 1; i <= 24; i++) statuses.push((await login(app, username, 'wrong-password', `2001:db8:1:2::${i.toString(16)}`)).statusCode)
  t.same(statuses, [...Array<number>(10).fill(401), ...Array<number>(14).fill(429)], 'LOGIN_ATTEMPTS (10), then 429')
  assertLimited(t, await login(app, username, 'password123', '2001:db8:1:2:ffff:ffff:ffff:ffff'), minuteMs, 'the whole /64, the right password too')
  t.equal((await login(app, username, 'password123', '2001:db8:1:3::1')).statusCode, 200, 'the next /64 is another client')
})

t.test('one name gets at most 10 × LOGIN_ATTEMPTS login attempts over all addresses', async (t) => {
  const app = await buildTestApp(t, { LOGIN_ATTEMPTS: '1' })
  const username = uniqueName()
  await register(app, username, 'password123')
  for (let i = 1; i <= 10; i++) t.equal((await login(app, username, 'wrong-password', `10.2.${i}.1`)).statusCode, 401, `address ${i}`)
  assertLimited(t, await login(app, username.toUpperCase(), 'password123', '10.2.11.1'), minuteMs, 'the 11th address, even with the right password')
  t.equal((await login(app, uniqueName(), 'password123', '10.2.11.1')).statusCode, 401, 'that address may still try another name')

  const mapped = uniqueName()
  t.equal((await login(app, mapped, 'wrong-password', '10.9.0.1')).statusCode, 401)
  t.equal((await login(app, mapped, 'wrong-password', '::ffff:10.9.0.1')).statusCode, 429, 'an IPv4 address mapped into IPv6 is that IPv4 address')
})

t.test('registrations are limited per client address, an IPv6 one by its /64', async (t) => {
  const app = await buildTestApp(t, { REGISTER_ATTEMPTS: '2' })
  t.equal((await registration(app, '2001:db8:5:5::1')).statusCode, 201)
  t.equal((await registration(app, '2001:db8:5:5:1:2:3:4')).statusCode, 201)
  assertLimited(t, await registration(app, '2001:db8:5:5::ffff'), hourMs, 'a third from the same /64')
  t.equal((await registration(app, '2001:db8:5:6::1')).statusCode, 201, 'another /64 is not limited')
})
