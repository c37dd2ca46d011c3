import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import access from '../../plugins/access.js'
import { buildTestApp, register } from '../helpers/app.js'

// Every route of a topic asks the access module (issue 24): a non-member of a private topic is
// refused on each of them, whichever plugin registered it, and a route that declares nothing
// does not start.

interface Route { method: string, path: string }

/** Every route of the app, read from Fastify's own listing (a tree of path segments). */
function routesOf (app: FastifyInstance): Route[] {
  const segments: string[] = []
  const routes: Route[] = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^(.*?)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line)
    if (match === null) continue
    segments.length = (match[1] ?? '').length / 4
    segments.push(match[2] ?? '')
    for (const method of match[3]?.split(', ') ?? []) routes.push({ method, path: segments.join('') })
  }
  return routes
}

/** A valid body for each route of a topic that needs one: a route added without one here fails below. */
const bodies: Record<string, object> = {
  'PUT /api/topics/:topic/read': { id: 1 },
  'POST /api/topics/:topic/messages': { text: 'let me in', ref: 'intruder-1' },
  'PUT /api/topics/:topic/members/:name': { role: 'member' }
}

t.test('on every route of a topic, a non-member of a private topic is refused with 403 forbidden', async (t) => {
  const app = await buildTestApp(t)
  const owner = await register(app)
  const stranger = await register(app)
  const created = await app.inject({ method: 'POST', url: '/api/topics', headers: { cookie: owner.cookie }, payload: { name: 'secret', visibility: 'private' } })
  t.equal(created.statusCode, 201)
  t.equal((await app.inject({ method: 'POST', url: '/api/topics/secret/messages', headers: { cookie: owner.cookie }, payload: { text: 'for members' } })).statusCode, 201)

  const routes = routesOf(app).filter((route) => route.path.includes('/:topic'))
  const listed = new Set(routes.map((route) => `${route.method} ${route.path}`))
  for (const known of ['GET /api/topics/:topic/messages', 'HEAD /api/topics/:topic/messages', 'POST /api/topics/:topic/messages',
    'PUT /api/topics/:topic/read', 'GET /api/topics/:topic/presence', 'GET /api/topics/:topic/members',
    'PUT /api/topics/:topic/members/:name', 'DELETE /api/topics/:topic/members/:name']) {
    t.ok(listed.has(known), `the listing has ${known}`)
  }

  for (const { method, path } of routes) {
    const key = `${method} ${path}`
    const url = path.replaceAll(/:([a-zA-Z]+)/g, (_, param: string) => {
      if (param === 'topic') return 'secret'
      if (param === 'name') return owner.username
      throw new Error(`${key}: a parameter this test does not know (:${param}); give it a value here`)
    })
    const body = bodies[key]
    if (body === undefined && ['POST', 'PUT', 'PATCH'].includes(method)) {
      t.fail(`${key}: give it a valid body in this test's bodies`)
      continue
    }
    const response = await app.inject({ method: method as 'GET', url, headers: { cookie: stranger.cookie }, ...(body === undefined ? {} : { payload: body }) })
    t.equal(response.statusCode, 403, `${key}: 403`)
    if (method !== 'HEAD') t.match(response.json(), { error: 'forbidden', message: String }, `${key}: forbidden`)
  }

  t.same(await app.db.query("SELECT author FROM messages WHERE topic = 'secret'"), [{ author: owner.username }], 'nothing published')
  t.same(await app.db.query('SELECT topic FROM read_positions WHERE user_id = $1', [stranger.id]), [], 'no read position')
  t.same(await app.db.query("SELECT user_id FROM topic_members WHERE topic = 'secret'"), [{ user_id: owner.id }], 'the members as they were')
})

t.test('GET /api/topics lists a private topic to its members only', async (t) => {
  const app = await buildTestApp(t)
  const owner = await register(app)
  const member = await register(app)
  const stranger = await register(app)
  const as = (who: typeof owner) => ({ cookie: who.cookie })
  const listed = async (who: typeof owner): Promise<Array<Record<string, unknown>>> =>
    (await app.inject({ url: '/api/topics', headers: as(who) })).json<{ topics: Array<Record<string, unknown>> }>().topics
  await app.inject({ method: 'POST', url: '/api/topics', headers: as(owner), payload: { name: 'secret', visibility: 'private' } })
  await app.inject({ method: 'POST', url: '/api/topics', headers: as(owner), payload: { name: 'quiet-club', visibility: 'private' } })
  await app.inject({ method: 'PUT', url: `/api/topics/secret/members/${member.username}`, headers: as(owner), payload: { role: 'member' } })
  for (const topic of ['secret', 'public-one']) {
    t.equal((await app.inject({ method: 'POST', url: `/api/topics/${topic}/messages`, headers: as(owner), payload: { text: 'hi' } })).statusCode, 201)
  }
  t.equal((await app.inject({ method: 'PUT', url: '/api/topics/secret/read', headers: as(member), payload: { id: 1 } })).statusCode, 204)
  const dm = (await app.inject({ method: 'POST', url: '/api/dm', headers: as(member), payload: { with: [owner.username] } })).json<{ topic: { name: string } }>().topic.name

  const ofOwner = await listed(owner)
  t.same(ofOwner.map((topic) => topic.name).sort(), ['public-one', 'quiet-club', 'secret', dm].sort(), 'the owner\'s private topics, with messages or not, and the direct-message topic')
  t.match(ofOwner.find((topic) => topic.name === 'secret'), { visibility: 'private', lastId: 1, unread: 1 })
  t.notOk('kind' in (ofOwner.find((topic) => topic.name === 'secret') ?? {}), 'kind only on a direct-message topic')
  t.match(ofOwner.find((topic) => topic.name === 'public-one'), { visibility: 'public' })
  t.same(ofOwner.find((topic) => topic.name === dm), {
    name: dm, lastId: 0, lastAt: String(ofOwner.find((topic) => topic.name === dm)?.lastAt), unread: 0, visibility: 'private', kind: 'dm', members: [owner.username, member.username].sort()
  })
  t.same((await listed(stranger)).map((topic) => topic.name), ['public-one'], 'a non-member sees only the public topic')

  t.equal((await app.inject({ method: 'DELETE', url: `/api/topics/secret/members/${member.username}`, headers: as(member) })).statusCode, 204)
  t.same((await listed(member)).map((topic) => topic.name).sort(), ['public-one', dm].sort(), 'left: a read position there lists nothing')
})

t.test('a route of a topic that declares no topicAccess does not start', async (t) => {
  const app = Fastify({ logger: false })
  t.teardown(async () => { await app.close() })
  // What plugins/access.ts needs of the plugins it depends on, and no more.
  await app.register(fp(async (fastify) => { fastify.decorate('db', { query: async () => [] } as never) }, { name: 'database' }))
  await app.register(fp(async (fastify) => { fastify.decorate('topicBus', { onEvent: () => {}, tellOtherInstances: () => {}, filterDeliveries: () => {} } as never) }, { name: 'topic-bus' }))
  await app.register(access)
  app.get('/api/topics/:topic/declared', { config: { topicAccess: 'read' } }, async () => ({}))
  t.throws(() => app.get('/api/topics/:topic/forgotten', async () => ({})), /GET \/api\/topics\/:topic\/forgotten: a route of a topic declares config.topicAccess/)
  app.get('/api/other/:topicality', async () => ({ open: true }))
  await app.ready()
  t.equal((await app.inject({ url: '/api/other/x' })).statusCode, 200, 'a path without a :topic segment is not a topic route')
  t.equal((await app.inject({ url: '/api/topics/general/declared' })).statusCode, 401, 'a declared route is checked: first, a user')
})
