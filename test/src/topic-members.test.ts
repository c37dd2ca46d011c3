import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, register } from '../helpers/app.js'
import { forEachEngine, startPostgres } from '../helpers/postgres.js'
import { decodeNotification } from '../../src/bus-format.js'
import { topicPattern } from '../../src/protocol.js'
import {
  createTopic, directMessageName, findUsers, listMembers, removeMember, setMember, startDirectMessage, topicExists
} from '../../src/topic-members.js'

// The statements of private topics and direct messages (src/topic-members.ts), issue 24.

const notify = undefined

t.test('a direct-message topic is named by its members\' ids, whoever asks', async (t) => {
  t.equal(directMessageName([17, 3]), 'dm.3-17', 'sorted by id, as numbers')
  t.equal(directMessageName([3, 17]), directMessageName([17, 3]), 'the same people, the same name')
  t.equal(directMessageName([3, 17, 3]), 'dm.3-17', 'each once')
  t.not(directMessageName([3, 17]), directMessageName([3, 18]))
  const many = [1_000_001, 1_000_002, 1_000_003, 1_000_004, 1_000_005, 1_000_006, 1_000_007, 1_000_008, 1_000_009]
  const hashed = directMessageName(many)
  t.match(hashed, /^dm\.[0-9a-f]{48}$/, 'ids that do not fit in a name: a hash of them')
  t.equal(directMessageName([...many].reverse()), hashed)
  t.not(directMessageName(many.slice(1)), hashed)
  for (const name of [directMessageName([1, 2]), hashed, directMessageName([12345678, 23456789, 34567890, 45678901, 56789012, 67890123, 78901234])]) {
    t.match(name, topicPattern, `${name} keeps the topic rule`)
  }
})

forEachEngine(t, async (t, env) => {
  const app = await buildTestApp(t, env)
  const [ann, bob, cat, dan] = await Promise.all(['Ann', 'bob', 'cat', 'dan'].map(async (name) => await register(app, `${name}${process.pid}`)))
  if (ann === undefined || bob === undefined || cat === undefined || dan === undefined) throw new Error('four users')
  const user = (who: typeof ann) => ({ id: who.id, name: who.username })

  await t.test('a topic created on purpose: public is a row, private a row and its owner; a name is a topic once', async (t) => {
    t.equal(await createTopic(app.db, { name: 'open', visibility: 'public', userId: ann.id }), true)
    t.same(await app.db.query("SELECT visibility, kind, created_by FROM topics WHERE name = 'open'"), [{ visibility: 'public', kind: null, created_by: ann.id }])
    t.same(await listMembers(app.db, 'open'), [], 'a public topic has no members')
    t.equal(await createTopic(app.db, { name: 'team', visibility: 'private', userId: ann.id }), true)
    t.same(await listMembers(app.db, 'team'), [{ name: ann.username, role: 'owner' }])
    t.equal(await createTopic(app.db, { name: 'team', visibility: 'public', userId: bob.id }), false, 'a private topic\'s name')
    t.equal(await createTopic(app.db, { name: 'open', visibility: 'private', userId: bob.id }), false, 'a public topic\'s name')
    t.same(await listMembers(app.db, 'open'), [], 'and nothing changed')
    t.ok(await topicExists(app.db, 'team'))
    t.notOk(await topicExists(app.db, 'nowhere'))
  })

  await t.test('users are found by name without regard to case', async (t) => {
    const found = await findUsers(app.db, [bob.username.toUpperCase(), ann.username.toLowerCase(), 'nobody-at-all'])
    t.same(found.map((u) => u.name).sort(), [ann.username, bob.username].sort(), 'as registered; a name nobody has is left out')
  })

  await t.test('an owner adds, changes and removes members; others may only leave', async (t) => {
    t.same(await setMember(app.db, { topic: 'team', caller: user(ann), name: bob.username.toUpperCase(), role: 'member', notify }),
      { ok: true, change: { topic: 'team', userId: bob.id, user: bob.username, role: 'member', by: ann.username, previous: null } }, 'the name as registered')
    t.same(await setMember(app.db, { topic: 'team', caller: user(ann), name: bob.username, role: 'member', notify }), { ok: true, change: undefined }, 'no change, nothing to tell')
    t.same(await setMember(app.db, { topic: 'team', caller: user(bob), name: cat.username, role: 'member', notify }), { ok: false, code: 'forbidden' }, 'a member adds nobody')
    t.same(await setMember(app.db, { topic: 'team', caller: user(cat), name: cat.username, role: 'owner', notify }), { ok: false, code: 'forbidden' }, 'a stranger adds nobody')
    t.same(await setMember(app.db, { topic: 'team', caller: user(ann), name: 'nobody-at-all', role: 'member', notify }), { ok: false, code: 'unknown_user' })
    t.same(await setMember(app.db, { topic: 'open', caller: user(ann), name: bob.username, role: 'member', notify }), { ok: false, code: 'not_private' })
    t.same(await setMember(app.db, { topic: 'nowhere', caller: user(ann), name: bob.username, role: 'member', notify }), { ok: false, code: 'not_private' })
    t.same(await setMember(app.db, { topic: 'team', caller: user(ann), name: ann.username, role: 'member', notify }), { ok: false, code: 'last_owner' },
      'the only owner cannot make themself a member')
    t.match(await setMember(app.db, { topic: 'team', caller: user(ann), name: cat.username, role: 'owner', notify }), { ok: true, change: { role: 'owner' } })
    t.same(await listMembers(app.db, 'team'), [
      { name: ann.username, role: 'owner' }, { name: bob.username, role: 'member' }, { name: cat.username, role: 'owner' }
    ], 'sorted by name, by code point (Ann before bob)')

    t.same(await removeMember(app.db, { topic: 'team', caller: user(bob), name: cat.username, notify }), { ok: false, code: 'forbidden' }, 'a member removes nobody else')
    t.same(await removeMember(app.db, { topic: 'team', caller: user(dan), name: dan.username, notify }), { ok: false, code: 'forbidden' }, 'a stranger cannot leave')
    t.same(await removeMember(app.db, { topic: 'team', caller: user(ann), name: dan.username, notify }), { ok: false, code: 'not_found' })
    t.same(await removeMember(app.db, { topic: 'team', caller: user(ann), name: 'nobody-at-all', notify }), { ok: false, code: 'unknown_user' })
    t.same(await removeMember(app.db, { topic: 'team', caller: user(bob), name: bob.username, notify }),
      { ok: true, change: { topic: 'team', userId: bob.id, user: bob.username, role: null, by: bob.username, previous: 'member' } }, 'a member leaves')
    t.match(await removeMember(app.db, { topic: 'team', caller: user(ann), name: cat.username, notify }), { ok: true, change: { role: null } }, 'an owner removes another owner')
    t.match(await setMember(app.db, { topic: 'team', caller: user(ann), name: dan.username, role: 'member', notify }), { ok: true })
    t.same(await removeMember(app.db, { topic: 'team', caller: user(ann), name: ann.username, notify }), { ok: false, code: 'last_owner' },
      'the only owner cannot leave while others stay')
    t.match(await removeMember(app.db, { topic: 'team', caller: user(ann), name: dan.username, notify }), { ok: true })
    t.match(await removeMember(app.db, { topic: 'team', caller: user(ann), name: ann.username, notify }), { ok: true }, 'a lone owner may leave')
    t.same(await listMembers(app.db, 'team'), [])
  })

  await t.test('a direct-message topic is made once, with its members, and its members are fixed', async (t) => {
    const topic = directMessageName([ann.id, bob.id])
    const added = [{ topic, userId: bob.id, user: bob.username, role: 'member' as const, by: ann.username }]
    t.equal(await startDirectMessage(app.db, { topic, callerId: ann.id, memberIds: [ann.id, bob.id], added, notify }), 'created')
    t.equal(await startDirectMessage(app.db, { topic, callerId: bob.id, memberIds: [bob.id, ann.id], added, notify }), 'exists')
    t.same(await app.db.query('SELECT visibility, kind FROM topics WHERE name = $1', [topic]), [{ visibility: 'private', kind: 'dm' }])
    t.same(await listMembers(app.db, topic), [{ name: ann.username, role: 'member' }, { name: bob.username, role: 'member' }])
    t.same(await setMember(app.db, { topic, caller: user(ann), name: cat.username, role: 'member', notify }), { ok: false, code: 'forbidden' })
    t.same(await removeMember(app.db, { topic, caller: user(ann), name: ann.username, notify }), { ok: false, code: 'forbidden' }, 'nobody leaves one either')
    await app.db.query("INSERT INTO topics (name) VALUES ('dm.1-999999')")
    t.equal(await startDirectMessage(app.db, { topic: 'dm.1-999999', callerId: ann.id, memberIds: [ann.id], added: [], notify }), 'not_dm',
      'a public topic of that name from before')
  })
})

/** Waits until `count` statements of the test database wait for a lock. */
async function lockWaiters (admin: (text: string) => Promise<{ rows: Array<{ waiting: number }> }>, count: number): Promise<void> {
  for (let attempt = 0; attempt < 10_000; attempt++) {
    const { rows } = await admin("SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
    if (rows[0]?.waiting === count) return
  }
  throw new Error(`never ${count} statements waiting for a lock`)
}

t.test('changes of one topic\'s members wait for each other: two owners removing each other at once leave one', async (t) => {
  const postgres = await startPostgres(t)
  const app: FastifyInstance = await buildTestApp(t, { DATABASE_URL: postgres.url })
  const [a, b, c] = await Promise.all([register(app), register(app), register(app)])
  await createTopic(app.db, { name: 'pair', visibility: 'private', userId: a.id })
  await setMember(app.db, { topic: 'pair', caller: { id: a.id, name: a.username }, name: b.username, role: 'owner', notify })
  await setMember(app.db, { topic: 'pair', caller: { id: a.id, name: a.username }, name: c.username, role: 'member', notify })
  // Hold the topic's row, so that both changes start before either reads anything.
  const holder = await postgres.client()
  await holder.query('BEGIN')
  await holder.query("SELECT 1 FROM topics WHERE name = 'pair' FOR NO KEY UPDATE")
  const both = Promise.all([
    removeMember(app.db, { topic: 'pair', caller: { id: a.id, name: a.username }, name: a.username, notify }),
    removeMember(app.db, { topic: 'pair', caller: { id: b.id, name: b.username }, name: b.username, notify })
  ])
  await lockWaiters(postgres.admin, 2)
  await holder.query('COMMIT')
  const outcomes = await both
  t.same(outcomes.map((outcome) => outcome.ok).sort(), [false, true], 'one leaves')
  t.match(outcomes.find((outcome) => !outcome.ok), { code: 'last_owner' }, 'the other is then the only owner')
  t.same((await listMembers(app.db, 'pair')).filter((member) => member.role === 'owner').length, 1, 'the topic keeps an owner')
})

t.test('a change tells the other instances by a NOTIFY sent at its commit', async (t) => {
  const postgres = await startPostgres(t)
  const app = await buildTestApp(t, { DATABASE_URL: postgres.url })
  const [a, b] = await Promise.all([register(app), register(app)])
  const listener = await postgres.client()
  await listener.query('LISTEN test_bus')
  const heard: string[] = []
  const next = async (): Promise<string> => await new Promise((resolve) => {
    listener.once('notification', (message) => { resolve(message.payload ?? '') })
  })
  const bus = { channel: 'test_bus', instanceId: 'one' }
  await createTopic(app.db, { name: 'told', visibility: 'private', userId: a.id })
  const added = next()
  await setMember(app.db, { topic: 'told', caller: { id: a.id, name: a.username }, name: b.username, role: 'member', notify: bus })
  heard.push(await added)
  const removed = next()
  await removeMember(app.db, { topic: 'told', caller: { id: b.id, name: b.username }, name: b.username, notify: bus })
  heard.push(await removed)
  const started = next()
  const topic = directMessageName([a.id, b.id])
  await startDirectMessage(app.db, { topic, callerId: a.id, memberIds: [a.id, b.id], added: [{ topic, userId: b.id, user: b.username, role: 'member', by: a.username }], notify: bus })
  heard.push(await started)
  t.same(heard.map(decodeNotification), [
    { kind: 'event', instanceId: 'one', event: { kind: 'members', topic: 'told', userId: b.id, user: b.username, role: 'member', by: a.username, previous: null } },
    { kind: 'event', instanceId: 'one', event: { kind: 'members', topic: 'told', userId: b.id, user: b.username, role: null, by: b.username, previous: 'member' } },
    { kind: 'event', instanceId: 'one', event: { kind: 'members', topic, userId: b.id, user: b.username, role: 'member', by: a.username } }
  ])
  t.equal(await startDirectMessage(app.db, { topic, callerId: b.id, memberIds: [a.id, b.id], added: [], notify: bus }), 'exists')
  const end = next()
  await listener.query("SELECT pg_notify('test_bus', 'end')")
  t.equal(await end, 'end', 'a direct-message topic that exists tells nothing')
})
