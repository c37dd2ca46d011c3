import t from 'tap'
import { Access } from '../../src/access.js'
import type { Queryable } from '../../src/db/database.js'
import { buildTestApp, register } from '../helpers/app.js'

t.test('the access module decides for public, private and direct-message topics, and follows membership changes', async (t) => {
  const app = await buildTestApp(t)
  const owner = await register(app)
  const member = await register(app)
  const stranger = await register(app)
  await app.db.query("INSERT INTO topics (name, visibility, created_by) VALUES ('secret', 'private', $1)", [owner.id])
  await app.db.query("INSERT INTO topic_members (topic, user_id, role) VALUES ('secret', $1, 'owner'), ('secret', $2, 'member')", [owner.id, member.id])
  await app.db.query("INSERT INTO topics (name, visibility, kind) VALUES ('dm.1-2', 'private', 'dm'), ('open', 'public', NULL)")
  await app.db.query("INSERT INTO topic_members (topic, user_id, role) VALUES ('dm.1-2', $1, 'member')", [owner.id])
  const access = new Access({ db: app.db })

  t.match(await access.decide(stranger.id, 'open', 'publish'), { allowed: true, topic: { exists: true, visibility: 'public' } })
  t.match(await access.decide(stranger.id, 'not-yet', 'read'), { allowed: true, topic: { exists: false, visibility: 'public' } }, 'a topic that does not exist yet is public')
  t.match(await access.decide(stranger.id, 'dm.9-9', 'read'), { allowed: false, code: 'bad_topic' }, 'a dm. name that is no topic is bad_topic')
  t.match(await access.decide(stranger.id, 'open', 'manage'), { allowed: false, code: 'forbidden' }, 'nobody manages a public topic')
  t.match(await access.decide(stranger.id, 'secret', 'read'), { allowed: false, code: 'forbidden', topic: { visibility: 'private', role: undefined } })
  t.match(await access.decide(member.id, 'secret', 'publish'), { allowed: true, topic: { role: 'member' } })
  t.match(await access.decide(member.id, 'secret', 'manage'), { allowed: false, code: 'forbidden' })
  t.match(await access.decide(owner.id, 'secret', 'manage'), { allowed: true, topic: { role: 'owner' } })
  t.match(await access.decide(owner.id, 'dm.1-2', 'read'), { allowed: true, topic: { kind: 'dm' } })
  t.match(await access.decide(owner.id, 'dm.1-2', 'manage'), { allowed: false, code: 'forbidden' }, 'nobody manages a direct-message topic')
  t.equal(access.mayReceive(member.id, 'secret'), true)
  t.equal(access.mayReceive(stranger.id, 'secret'), false)

  // Known now: a change is applied in place, with no read of the table.
  const heard: unknown[] = []
  access.onChange((change) => heard.push(change))
  access.apply({ topic: 'secret', userId: member.id, user: member.username, role: null, by: owner.username })
  t.equal(access.mayReceive(member.id, 'secret'), false, 'a removed member receives nothing more')
  t.match(await access.decide(member.id, 'secret', 'read'), { allowed: false, code: 'forbidden' }, 'the kept members changed, not the table')
  access.apply({ topic: 'secret', userId: stranger.id, user: stranger.username, role: 'member', by: owner.username })
  t.match(await access.decide(stranger.id, 'secret', 'read'), { allowed: true })
  t.equal(heard.length, 2, 'every change is handed on')

  t.same(access.forgetMembers().sort(), ['dm.1-2', 'secret'], 'after an outage every private topic is read again')
  t.match(await access.decide(member.id, 'secret', 'read'), { allowed: true }, 'read again from the table')
  t.same([...(await access.refresh('secret')) ?? []].sort(), [[member.id, 'member'], [owner.id, 'owner']].sort())
  t.equal(await access.refresh('open'), undefined)
})

t.test('topics with subscribers here are kept past the bounds; a read a change overtook is read again; handlers hear the role before', async (t) => {
  const app = await buildTestApp(t)
  const owner = await register(app)
  const member = await register(app)
  for (const name of ['p1', 'p2', 'p3']) {
    await app.db.query("INSERT INTO topics (name, visibility, created_by) VALUES ($1, 'private', $2)", [name, owner.id])
    await app.db.query("INSERT INTO topic_members (topic, user_id, role) VALUES ($1, $2, 'owner')", [name, owner.id])
  }
  await app.db.query("INSERT INTO topics (name) VALUES ('o1'), ('o2'), ('o3')")

  // Bounds of one: each topic read pushes the one before out, unless it is pinned.
  const access = new Access({ db: app.db, maxPrivateTopics: 1, maxPublicTopics: 1 })
  access.pin('p1')
  access.pin('o1')
  for (const name of ['p1', 'p2', 'p3', 'o1', 'o2', 'o3']) await access.decide(owner.id, name, 'read')
  t.equal(access.knownVisibility('p1'), 'private', 'a pinned private topic stays known')
  t.equal(access.knownVisibility('p2'), undefined, 'an unpinned one was forgotten for the next')
  t.equal(access.knownVisibility('p3'), 'private')
  t.equal(access.knownVisibility('o1'), 'public', 'a pinned public topic stays known')
  t.equal(access.knownVisibility('o2'), undefined)
  t.equal(access.knownVisibility('o3'), 'public')
  access.unpin('p1')
  await access.decide(owner.id, 'p2', 'read')
  t.equal(access.knownVisibility('p1'), undefined, 'unpinned, it goes like any other')

  // A change of the topic heard while its members are read: the read is made again, and kept.
  let reads = 0
  let readDone = (): void => {}
  let open = (): void => {}
  const gate = new Promise<void>((resolve) => { open = resolve })
  const firstRead = new Promise<void>((resolve) => { readDone = resolve })
  const held: Queryable = {
    query: async <Row extends object>(text: string, params?: unknown[], name?: string): Promise<Row[]> => {
      const rows = await app.db.query<Row>(text, params, name)
      if (++reads === 1) {
        readDone()
        await gate
      }
      return rows
    }
  }
  const racing = new Access({ db: held })
  const reading = racing.refresh('p1')
  await firstRead
  await app.db.query("INSERT INTO topic_members (topic, user_id, role) VALUES ('p1', $1, 'member')", [member.id])
  racing.apply({ topic: 'p1', userId: member.id, user: member.username, role: 'member', by: owner.username })
  open()
  t.ok((await reading)?.has(member.id), 'the read made again sees the change')
  t.equal(reads, 2, 'read twice')
  t.equal(racing.mayReceive(member.id, 'p1'), true, 'and kept')

  const befores: unknown[] = []
  racing.onChange((_change, before) => befores.push(before))
  racing.apply({ topic: 'p1', userId: member.id, user: member.username, role: 'owner', by: owner.username })
  racing.apply({ topic: 'p1', userId: member.id, user: member.username, role: null, by: owner.username })
  racing.apply({ topic: 'p1', userId: member.id, user: member.username, role: 'member', by: owner.username, previous: null })
  racing.apply({ topic: 'unknown-here', userId: member.id, user: member.username, role: 'member', by: owner.username })
  t.same(befores, ['member', 'owner', null, undefined], 'the role before: known here, or said by the change, or undefined')
})
