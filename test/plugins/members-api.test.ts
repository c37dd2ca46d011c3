import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { buildTestApp, register } from '../helpers/app.js'
import { startInstances } from '../helpers/instances.js'
import type { MembersChange } from '../../src/access.js'

// Private topics, members and direct messages over HTTP (issue 24): POST /api/topics, the
// member routes and POST /api/dm, with every status code and body of docs/protocol.md.

type Who = Awaited<ReturnType<typeof register>>

/** The requests of this file, as one user. */
function as (app: FastifyInstance, who: Who) {
  const headers = { cookie: who.cookie }
  return {
    create: async (payload: unknown) => await app.inject({ method: 'POST', url: '/api/topics', headers, payload: payload as object }),
    members: async (topic: string) => await app.inject({ url: `/api/topics/${topic}/members`, headers }),
    put: async (topic: string, name: string, role: unknown) => await app.inject({ method: 'PUT', url: `/api/topics/${topic}/members/${name}`, headers, payload: { role } }),
    remove: async (topic: string, name: string) => await app.inject({ method: 'DELETE', url: `/api/topics/${topic}/members/${name}`, headers }),
    dm: async (names: unknown) => await app.inject({ method: 'POST', url: '/api/dm', headers, payload: { with: names } }),
    history: async (topic: string) => await app.inject({ url: `/api/topics/${topic}/messages`, headers }),
    publish: async (topic: string, text: string) => await app.inject({ method: 'POST', url: `/api/topics/${topic}/messages`, headers, payload: { text } }),
    topics: async () => (await app.inject({ url: '/api/topics', headers })).json<{ topics: Array<Record<string, unknown>> }>().topics
  }
}

/** Status and body at once, so a failing check shows both. */
const answer = (response: LightMyRequestResponse): { status: number, body: unknown } =>
  ({ status: response.statusCode, body: response.body === '' ? undefined : response.json() })
const refusal = (status: number, error: string) => ({ status, body: { error, message: String } })

t.test('POST /api/topics creates a public or private topic, its creator the owner', async (t) => {
  const app = await buildTestApp(t)
  const ann = await register(app)
  const bob = await register(app)
  const a = as(app, ann)
  t.same(answer(await a.create({ name: 'team', visibility: 'private' })), { status: 201, body: { topic: { name: 'team', visibility: 'private', role: 'owner' } } })
  t.same(answer(await a.create({ name: 'lobby', visibility: 'public' })), { status: 201, body: { topic: { name: 'lobby', visibility: 'public', role: 'owner' } } })
  t.same(await app.db.query("SELECT name, visibility, created_by FROM topics WHERE name IN ('team', 'lobby') ORDER BY name"),
    [{ name: 'lobby', visibility: 'public', created_by: ann.id }, { name: 'team', visibility: 'private', created_by: ann.id }])
  t.same(await app.db.query("SELECT topic FROM topic_members WHERE topic = 'lobby'"), [], 'a public topic is just its row')
  t.same(answer(await as(app, bob).history('lobby')), { status: 200, body: { messages: [] } }, 'anyone reads a public topic')

  t.equal((await as(app, bob).publish('used', 'first')).statusCode, 201)
  for (const name of ['team', 'lobby', 'used']) {
    t.match(answer(await as(app, bob).create({ name, visibility: 'private' })), refusal(409, 'topic_exists'), `${name}: a topic of either kind, or one made by a publish`)
  }
  for (const name of ['Bad Name', 'UPPER', '-dash', 'x'.repeat(65), '']) {
    t.match(answer(await a.create({ name, visibility: 'private' })), refusal(400, 'bad_topic'), `${JSON.stringify(name)}`)
  }
  t.match(answer(await a.create({ name: 'dm.1-2', visibility: 'private' })), refusal(400, 'bad_topic'), 'dm. names are for direct messages')
  t.match(answer(await a.create({ name: 'x', visibility: 'secret' })), refusal(400, 'bad_request'))
  t.match(answer(await a.create({ name: 'x' })), refusal(400, 'bad_request'))
  t.match(answer(await app.inject({ method: 'POST', url: '/api/topics', payload: { name: 'x', visibility: 'public' } })), refusal(401, 'unauthorized'))
})

t.test('POST /api/topics counts against TOPIC_CREATE_RATE, with a publish\'s new topics', async (t) => {
  const app = await buildTestApp(t, { TOPIC_CREATE_RATE: '3' })
  const ann = await register(app)
  const a = as(app, ann)
  t.equal((await a.create({ name: 'one', visibility: 'private' })).statusCode, 201)
  t.equal((await a.publish('two', 'a new topic by a publish')).statusCode, 201)
  t.equal((await a.create({ name: 'three', visibility: 'public' })).statusCode, 201)
  const refused = await a.create({ name: 'four', visibility: 'private' })
  t.match(answer(refused), { status: 429, body: { error: 'rate_limited', message: String, retryAfterMs: Number } })
  t.match(refused.headers['retry-after'], /^\d+$/)
  t.match(answer(await a.create({ name: 'one', visibility: 'private' })), refusal(409, 'topic_exists'), 'a name that exists is not counted')
  t.same(await app.db.query("SELECT 1 FROM topics WHERE name = 'four'"), [], 'nothing made')
  t.equal((await as(app, await register(app)).create({ name: 'four', visibility: 'private' })).statusCode, 201, 'another user has a limit of their own')
})

t.test('members: who may list, add, change and remove them', async (t) => {
  const app = await buildTestApp(t)
  const [ann, bob, cat, eve] = [await register(app), await register(app), await register(app), await register(app)]
  const [a, b, c, e] = [as(app, ann), as(app, bob), as(app, cat), as(app, eve)]
  const heard: MembersChange[] = []
  app.access.onChange((change) => { heard.push(change) })
  await a.create({ name: 'team', visibility: 'private' })
  await a.create({ name: 'lobby', visibility: 'public' })

  t.same(answer(await a.members('team')), { status: 200, body: { visibility: 'private', members: [{ name: ann.username, role: 'owner' }] } })
  t.same(answer(await e.members('lobby')), { status: 200, body: { visibility: 'public', members: [] } })
  t.same(answer(await e.members('not-yet')), { status: 200, body: { visibility: 'public', members: [] } }, 'a topic not made yet is public')
  t.match(answer(await e.members('team')), refusal(403, 'forbidden'), 'a non-member sees no member list')
  t.match(answer(await e.members('dm.1-2')), refusal(400, 'bad_topic'), 'a dm. name that is no topic')
  t.match(answer(await e.members('Bad%20Name')), refusal(400, 'bad_topic'))
  t.match(answer(await app.inject({ url: '/api/topics/team/members' })), refusal(401, 'unauthorized'))

  t.same(answer(await a.put('team', bob.username.toUpperCase(), 'member')), { status: 204, body: undefined }, 'an owner adds a member, by name in any case')
  t.same(heard, [{ topic: 'team', userId: bob.id, user: bob.username, role: 'member', by: ann.username, previous: null }], 'told to this instance: the name as registered')
  t.equal((await b.history('team')).statusCode, 200, 'the new member reads the topic')
  t.same(answer(await a.put('team', bob.username, 'member')), { status: 204, body: undefined }, 'the same role again')
  t.equal(heard.length, 1, 'changes nothing and tells nothing')
  t.match(answer(await b.put('team', cat.username, 'member')), refusal(403, 'forbidden'), 'a member adds nobody')
  t.match(answer(await e.put('team', eve.username, 'owner')), refusal(403, 'forbidden'), 'a non-member adds nobody, themself included')
  t.match(answer(await a.put('team', 'nobody-at-all', 'member')), refusal(404, 'unknown_user'))
  t.match(answer(await a.put('team', cat.username, 'admin')), refusal(400, 'bad_request'), 'a role other than owner or member')
  t.match(answer(await a.put('lobby', cat.username, 'member')), refusal(400, 'bad_request'), 'a public topic has no members')
  t.match(answer(await a.put('team', ann.username, 'member')), refusal(409, 'last_owner'), 'the only owner cannot step down')
  t.equal((await a.put('team', cat.username, 'owner')).statusCode, 204)
  t.same(answer(await b.members('team')), {
    status: 200,
    body: { visibility: 'private', members: [ann, bob, cat].map((who) => ({ name: who.username, role: who === bob ? 'member' : 'owner' })).sort((x, y) => x.name < y.name ? -1 : 1) }
  }, 'any member lists them, sorted by name')
  t.equal((await c.put('team', bob.username, 'owner')).statusCode, 204, 'a second owner manages too')
  t.equal((await c.put('team', bob.username, 'member')).statusCode, 204)

  t.match(answer(await b.remove('team', cat.username)), refusal(403, 'forbidden'), 'a member removes nobody else')
  t.match(answer(await e.remove('team', eve.username)), refusal(403, 'forbidden'), 'a non-member cannot even leave')
  t.match(answer(await a.remove('team', eve.username)), refusal(404, 'not_found'), 'not a member')
  t.match(answer(await a.remove('team', 'nobody-at-all')), refusal(404, 'unknown_user'))
  t.match(answer(await a.remove('lobby', eve.username)), refusal(400, 'bad_request'))
  heard.length = 0
  t.same(answer(await b.remove('team', bob.username)), { status: 204, body: undefined }, 'a member leaves')
  t.match(answer(await b.history('team')), refusal(403, 'forbidden'), 'and reads it no more')
  t.same(answer(await a.remove('team', cat.username)), { status: 204, body: undefined }, 'an owner removes another owner')
  t.match(answer(await c.members('team')), refusal(403, 'forbidden'))
  t.same(heard, [
    { topic: 'team', userId: bob.id, user: bob.username, role: null, by: bob.username, previous: 'member' },
    { topic: 'team', userId: cat.id, user: cat.username, role: null, by: ann.username, previous: 'owner' }
  ])
  t.equal((await a.put('team', eve.username, 'member')).statusCode, 204)
  t.match(answer(await a.remove('team', ann.username)), refusal(409, 'last_owner'), 'the only owner cannot leave while others stay')
  t.equal((await a.remove('team', eve.username)).statusCode, 204)
  t.equal((await a.remove('team', ann.username)).statusCode, 204, 'a lone owner may leave')
  t.match(answer(await a.members('team')), refusal(403, 'forbidden'), 'then nobody reads it')
})

t.test('POST /api/dm: the same people always get the same topic, whoever asks; its members are fixed', async (t) => {
  const app = await buildTestApp(t, { TOPIC_CREATE_RATE: '2' })
  const [ann, bob, cat, eve] = [await register(app), await register(app), await register(app), await register(app)]
  const [a, b, c, e] = [as(app, ann), as(app, bob), as(app, cat), as(app, eve)]
  const heard: MembersChange[] = []
  app.access.onChange((change) => { heard.push(change) })

  const started = await a.dm([bob.username])
  t.equal(started.statusCode, 200)
  const { topic } = started.json<{ topic: { name: string } }>()
  t.match(topic.name, /^dm\./)
  t.same(started.json(), { topic: { name: topic.name, visibility: 'private', kind: 'dm', members: [ann.username, bob.username].sort() } })
  t.same(heard, [{ topic: topic.name, userId: bob.id, user: bob.username, role: 'member', by: ann.username, previous: null }], 'bob is told he was added')
  t.same((await b.dm([ann.username.toUpperCase()])).json(), started.json(), 'the other way round, any case: the same topic')
  t.same((await a.dm([bob.username, ann.username, bob.username.toLowerCase()])).json(), started.json(), 'the caller\'s own name and repeats are ignored')
  t.equal(heard.length, 1, 'only the first start tells anyone')

  t.equal((await b.publish(topic.name, 'hello ann')).statusCode, 201)
  t.same((await a.history(topic.name)).json<{ messages: Array<{ text: string }> }>().messages.map((m) => m.text), ['hello ann'])
  t.match(answer(await e.history(topic.name)), refusal(403, 'forbidden'), 'nobody else reads it')
  t.same(answer(await a.members(topic.name)), {
    status: 200, body: { visibility: 'private', members: [ann.username, bob.username].sort().map((name) => ({ name, role: 'member' })) }
  })
  t.match(answer(await a.put(topic.name, cat.username, 'member')), refusal(403, 'forbidden'), 'nobody adds a member')
  t.match(answer(await a.put(topic.name, bob.username, 'owner')), refusal(403, 'forbidden'), 'or changes a role')
  t.match(answer(await a.remove(topic.name, bob.username)), refusal(403, 'forbidden'), 'or removes one')
  t.match(answer(await b.remove(topic.name, bob.username)), refusal(403, 'forbidden'), 'or leaves')

  const group = (await c.dm([ann.username, bob.username])).json<{ topic: { name: string, members: string[] } }>().topic
  t.not(group.name, topic.name, 'three people: another topic')
  t.same(group.members, [ann.username, bob.username, cat.username].sort())
  t.equal((await e.dm([ann.username])).statusCode, 200)
  t.equal((await e.dm([bob.username])).statusCode, 200)
  t.match(answer(await e.dm([cat.username])), refusal(429, 'rate_limited'), 'a new direct-message topic counts against TOPIC_CREATE_RATE')
  t.equal((await e.dm([ann.username])).statusCode, 200, '…one that exists does not')

  t.match(answer(await a.dm([])), refusal(400, 'bad_request'), 'nobody')
  t.match(answer(await a.dm([ann.username])), refusal(400, 'bad_request'), 'only the caller')
  t.match(answer(await a.dm([ann.username.toUpperCase(), ann.username])), refusal(400, 'bad_request'), 'only the caller, twice')
  const nine = await Promise.all(Array.from({ length: 9 }, async () => (await register(app)).username))
  t.match(answer(await a.dm(nine)), refusal(400, 'bad_request'), 'more than 8 others')
  t.match(answer(await a.dm([...nine, ann.username])), refusal(400, 'bad_request'))
  t.match(answer(await a.dm([bob.username, 'nobody-at-all'])), refusal(404, 'unknown_user'))
  t.match(answer(await a.dm('bob')), refusal(400, 'bad_request'), 'with is a list')
  t.match(answer(await app.inject({ method: 'POST', url: '/api/dm', payload: { with: [bob.username] } })), refusal(401, 'unauthorized'))
})

t.test('a change made on one instance holds on the other as soon as it hears it', async (t) => {
  const { instances: [one, two] } = await startInstances(t, 2)
  const ann = one.user
  const bob = two.user
  const a = as(one.app, ann)
  const b = as(two.app, bob)
  await a.create({ name: 'shared', visibility: 'private' })
  t.match(answer(await b.history('shared')), refusal(403, 'forbidden'), 'not a member yet: instance two keeps the members now')
  const added = new Promise<MembersChange>((resolve) => { two.app.access.onChange(resolve) })
  t.equal((await a.put('shared', bob.username, 'member')).statusCode, 204)
  t.same(await added, { topic: 'shared', userId: bob.id, user: bob.username, role: 'member', by: ann.username, previous: null }, 'instance two hears the change')
  t.equal((await b.history('shared')).statusCode, 200, 'and lets bob in')
  const removed = new Promise<MembersChange>((resolve) => { two.app.access.onChange(resolve) })
  t.equal((await a.remove('shared', bob.username)).statusCode, 204)
  t.match(await removed, { role: null })
  t.match(answer(await b.history('shared')), refusal(403, 'forbidden'), 'and shuts bob out')

  const dm = new Promise<MembersChange>((resolve) => { two.app.access.onChange(resolve) })
  const started = (await a.dm([bob.username])).json<{ topic: { name: string } }>().topic
  t.same(await dm, { topic: started.name, userId: bob.id, user: bob.username, role: 'member', by: ann.username, previous: null }, 'a direct-message topic started with bob')
  t.same((await b.dm([ann.username])).json<{ topic: { name: string } }>().topic.name, started.name, 'the same topic from the other instance')
})
