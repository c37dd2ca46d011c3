import t from 'tap'
import { AttemptLimiter } from '../src/attempt-limiter.js'
import { buildTestApp } from './helpers/app.js'
import { forEachEngine } from './helpers/postgres.js'

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
