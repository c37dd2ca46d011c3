import t from 'tap'
import { PublishLimiter } from '../../src/publish-limiter.js'
import { buildTestApp, register } from '../helpers/app.js'

t.test('the publish limiter', async (t) => {
  const app = await buildTestApp(t)
  const { id } = await register(app)
  let now = 1_000_000
  const queries: string[] = []
  const db = { query: async <Row extends object>(text: string, params?: unknown[]) => { queries.push(text); return await app.db.query<Row>(text, params) } }

  await t.test('concurrent publishes share one lease and waste no token', async (t) => {
    const limiter = new PublishLimiter(db, 20, 60, () => now)
    t.teardown(() => { limiter.stop() })
    const results = await Promise.all(Array.from({ length: 6 }, async () => await limiter.take(id)))
    t.same(results, Array(6).fill('ok'))
    t.equal(queries.length, 1, 'one lease of 10 tokens served all six')
    const rows = await app.db.query<{ tokens: number }>('SELECT tokens FROM publish_buckets WHERE user_id = $1', [id])
    t.equal(Math.round(rows[0]?.tokens ?? -1), 50, 'the bucket lent exactly one lease')
  })

  await t.test('an empty bucket is asked again only once a token can be back', async (t) => {
    const limiter = new PublishLimiter(db, 0.001, 60, () => now)
    t.teardown(() => { limiter.stop() })
    await app.db.query('UPDATE publish_buckets SET tokens = 0, updated_at = now() WHERE user_id = $1', [id])
    queries.length = 0
    const first = await limiter.take(id)
    if (typeof first !== 'object') throw new Error(`refused with a wait, not ${first}`)
    t.ok(first.retryAfterMs >= 999_000 && first.retryAfterMs <= 1_000_000, `the wait is until a token is back at 0.001/s: ${first.retryAfterMs} ms`)
    const second = await limiter.take(id)
    t.same(second, { retryAfterMs: first.retryAfterMs + 1_000_000 }, 'the next one refused is told to wait for the next token')
    t.equal(queries.length, 1, 'the second refusal cost no query')
    now += first.retryAfterMs - 1
    t.same(await limiter.take(id), { retryAfterMs: 1 + 2_000_000 }, 'and the third for the one after')
    t.equal(queries.length, 1, 'not asked again before the token can be back')
    now += 1
    await limiter.take(id)
    t.equal(queries.length, 2, 'asked again once it can be')
  })

  await t.test('a user who keeps publishing renews the lease before it runs out, and no publish waits for it', async (t) => {
    const gate: { hold?: Promise<void> } = {}
    const gated = {
      query: async <Row extends object>(text: string, params?: unknown[]) => {
        queries.push(text)
        await gate.hold
        return await app.db.query<Row>(text, params)
      }
    }
    const limiter = new PublishLimiter(gated, 20, 60, () => now)
    t.teardown(() => { limiter.stop() })
    await app.db.query('UPDATE publish_buckets SET tokens = 60, updated_at = now() WHERE user_id = $1', [id])
    queries.length = 0
    for (let i = 0; i < 7; i++) t.equal(await limiter.take(id), 'ok')
    t.equal(queries.length, 1, 'one lease of 10 tokens')
    let release = (): void => {}
    gate.hold = new Promise<void>((resolve) => { release = resolve })
    t.equal(await limiter.take(id), 'ok', 'the publish that leaves 2 of 10 tokens goes on at once')
    t.equal(queries.length, 2, 'while the next lease is asked for')
    release()
    const results = []
    for (let i = 0; i < 12; i++) results.push(await limiter.take(id))
    t.same(results, Array(12).fill('ok'), 'the 2 left and the 10 renewed')
    t.equal(queries.length, 3, 'and the next renewal began before they ran out')
  })

  await t.test('steady publishing near the end of each lease never holds more than one lease', async (t) => {
    const limiter = new PublishLimiter(db, 20, 60, () => now)
    t.teardown(() => { limiter.stop() })
    // Its lease as it stands, and the one being asked for.
    const internals = limiter as unknown as { credits: Map<number, { tokens: number }>, leasing: Map<number, Promise<void>> }
    await app.db.query('UPDATE publish_buckets SET tokens = 60, updated_at = now() WHERE user_id = $1', [id])
    let most = 0
    for (let i = 0; i < 12; i++) {
      t.equal(await limiter.take(id), 'ok')
      await internals.leasing.get(id)
      most = Math.max(most, internals.credits.get(id)?.tokens ?? 0)
      // Each publish in the last quarter of the lease's second: each one renews.
      now += 800
    }
    t.ok(most <= 10, `at most one lease of 10 tokens held: ${most}`)
  })
})
