import t from 'tap'
import type { Database } from '../../src/db/database.js'
import { openDatabase } from '../../src/db/open.js'
import { enter, exit, expireIn, heartbeat, presentIn, sweep } from '../../src/presence-store.js'
import { migratedDataDir, tempDir, type TestContext } from '../helpers/app.js'
import { forEachEngine } from '../helpers/postgres.js'

// The SQL of presence, on PGlite and on a real Postgres, with no instance running beside it.

async function storeDatabase (t: TestContext, databaseUrl: string | undefined): Promise<{ db: Database, user: (name: string) => Promise<number> }> {
  const db = await openDatabase({ databaseUrl, dataDir: databaseUrl === undefined ? await migratedDataDir(t) : tempDir(t) })
  t.teardown(async () => { await db.close() })
  await db.migrate()
  const user = async (name: string): Promise<number> =>
    (await db.query<{ id: number }>("INSERT INTO users (name, password_hash) VALUES ($1, 'x') RETURNING id", [name]))[0]?.id ?? 0
  return { db, user }
}

const countRows = async (db: Database): Promise<{ presence: number, members: number }> => (await db.query<{ presence: number, members: number }>(
  'SELECT (SELECT count(*)::int FROM presence) AS presence, (SELECT count(*)::int FROM topic_presence) AS members'))[0] ?? { presence: -1, members: -1 }

forEachEngine(t, async (t, env) => {
  // One database per engine (opening one is slow on a busy machine), emptied before each test.
  const { db, user } = await storeDatabase(t, env.DATABASE_URL)
  const [alice, bob] = [await user('alice'), await user('bob')]
  t.beforeEach(async () => { for (const table of ['presence', 'topic_presence', 'instances']) await db.query(`DELETE FROM ${table}`) })

  await t.test('first in says joined, last out says left, and leaves no row behind', async (t) => {
    await heartbeat(db, 'a', { aliveForSeconds: 60 })
    await heartbeat(db, 'b', { aliveForSeconds: 60 })
    t.equal(await enter(db, 'a', 'room', alice, 'alice'), true, 'joined')
    t.equal(await enter(db, 'b', 'room', alice, 'alice'), false, 'a second instance: not joined')
    t.equal(await enter(db, 'b', 'room', alice, 'alice'), false, 'the same instance again counts nothing')
    t.same(await presentIn(db, 'room'), ['alice'])
    t.equal(await exit(db, 'a', 'room', alice), false, 'still on b')
    t.equal(await exit(db, 'b', 'room', alice), true, 'left')
    t.equal(await exit(db, 'b', 'room', alice), false, 'an exit of nothing says nothing')
    t.same(await presentIn(db, 'room'), [])
    t.same(await countRows(db), { presence: 0, members: 0 }, 'topic_presence has no row at zero')
    t.equal(await enter(db, 'a', 'room', alice, 'alice'), true, 'and a later enter joins again')
  })

  await t.test('a heartbeat vouches for its own instance for the span it gives: the sweep goes by it', async (t) => {
    t.equal(await heartbeat(db, 'long', { aliveForSeconds: 45 }), true, 'made')
    t.equal(await heartbeat(db, 'long', { aliveForSeconds: 45 }), false, 'then beaten')
    // An instance whose heartbeat has run out (a span already past).
    await heartbeat(db, 'stopped', { aliveForSeconds: -1 })
    await enter(db, 'long', 'room', alice, 'alice')
    await enter(db, 'stopped', 'room', bob, 'bob')
    await enter(db, 'stopped', 'room', alice, 'alice')
    t.same(await sweep(db), [{ topic: 'room', user: 'bob' }], 'bob left; alice is still on the long one')
    t.same(await presentIn(db, 'room'), ['alice'])
    t.same(await countRows(db), { presence: 1, members: 1 })
    t.same((await db.query<{ id: string }>('SELECT id FROM instances')).map((row) => row.id), ['long'])
    t.equal(await heartbeat(db, 'stopped', { aliveForSeconds: 45 }), true, 'an instance taken for dead is told so at its next beat')
  })

  await t.test('a row of an earlier version (a beat time, no alive_until) is judged by the sweeping instance\'s TTL, as that version judges ours', async (t) => {
    await db.query("INSERT INTO instances (id, heartbeat_at) VALUES ('old-beating', now()), ('old-stopped', now() - interval '31 seconds')")
    await enter(db, 'old-beating', 'room', alice, 'alice')
    await enter(db, 'old-stopped', 'room', bob, 'bob')
    t.same(await sweep(db, { ttlSeconds: 30 }), [{ topic: 'room', user: 'bob' }], 'only the one whose beat is older than the TTL')
    t.same(await presentIn(db, 'room'), ['alice'], 'a rolling upgrade does not drop the old instances\' users')
    await heartbeat(db, 'new', { aliveForSeconds: 45 })
    const [row] = await db.query<{ recent: boolean }>("SELECT heartbeat_at > now() - interval '5 seconds' AS recent FROM instances WHERE id = 'new'")
    t.equal(row?.recent, true, 'a beat writes its time too, which an earlier version reads')
  })

  await t.test('presence whose instance row is gone is swept', async (t) => {
    await heartbeat(db, 'ghost', { aliveForSeconds: 60 })
    await enter(db, 'ghost', 'room', alice, 'alice')
    await db.query("DELETE FROM instances WHERE id = 'ghost'")
    t.same(await sweep(db), [{ topic: 'room', user: 'alice' }])
    t.same(await countRows(db), { presence: 0, members: 0 })
    t.same(await sweep(db), [], 'once')
  })

  await t.test('an instance leaving at once, or within a grace', async (t) => {
    await heartbeat(db, 'a', { aliveForSeconds: 60 })
    await heartbeat(db, 'b', { aliveForSeconds: 60 })
    await enter(db, 'a', 'room', alice, 'alice')
    await expireIn(db, 'b', 2)
    const [row] = await db.query<{ soon: boolean }>("SELECT alive_until <= now() + interval '2 seconds' AS soon FROM instances WHERE id = 'b'")
    t.equal(row?.soon, true, 'b is vouched for the grace only')
    t.same(await sweep(db, { instanceId: 'a' }), [{ topic: 'room', user: 'alice' }], 'a leaves at once')
    t.same(await countRows(db), { presence: 0, members: 0 })
  })
})
