import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, register } from '../helpers/app.js'
import { sessionCookie } from '../helpers/http.js'
import { connect, type ChatClient } from '../helpers/chat.js'
import { startInstances } from '../helpers/instances.js'
import { CloseCode } from '../../src/protocol.js'

const login = async (app: FastifyInstance, username: string, password: string, remoteAddress = '127.0.0.1', cookie?: string) =>
  await app.inject({ method: 'POST', url: '/api/login', payload: { username, password }, remoteAddress, headers: cookie === undefined ? {} : { cookie } })

t.test('a user keeps at most 20 sessions: a login past that ends the oldest', async (t) => {
  const app = await buildTestApp(t, { LOGIN_ATTEMPTS: '100' })
  const { cookie: first, username, id } = await register(app)
  const other = await register(app)
  const cookies = [first]
  for (let i = 0; i < 20; i++) cookies.push(sessionCookie(await login(app, username, 'correct horse')))
  const statuses = await Promise.all(cookies.map(async (cookie) => (await app.inject({ url: '/api/me', headers: { cookie } })).statusCode))
  t.same(statuses, [401, ...Array<number>(20).fill(200)], 'the 21st session ended the first')
  t.equal((await app.db.query('SELECT 1 FROM sessions WHERE user_id = $1', [id])).length, 20)
  t.equal((await app.inject({ url: '/api/me', headers: { cookie: other.cookie } })).statusCode, 200, 'another user\'s session is left alone')
  const renewed = sessionCookie(await login(app, username, 'correct horse', '127.0.0.1', cookies[5]))
  const after = await Promise.all([...cookies, renewed].map(async (cookie) => (await app.inject({ url: '/api/me', headers: { cookie } })).statusCode))
  t.same(after, [401, 200, 200, 200, 200, 401, ...Array<number>(15).fill(200), 200], 'a login that replaces its own session ends only that one')
})

t.test('on two instances: logout everywhere, and the 21st login, close the ended sessions\' sockets with 4401 on both', async (t) => {
  const { instances: [{ app: a, user: alice }, { app: b, user: bob }] } = await startInstances(t, 2, { LOGIN_ATTEMPTS: '100' })
  const loginOn = async (app: FastifyInstance, username: string, cookie?: string): Promise<string> => {
    const response = await login(app, username, 'correct horse', '127.0.0.1', cookie)
    if (response.statusCode !== 200) throw new Error(`login: ${response.statusCode} ${response.body}`)
    return sessionCookie(response)
  }
  const open = async (app: FastifyInstance, cookie: string, topic: string): Promise<ChatClient> => {
    const client = await connect(app, cookie, { topic })
    await client.nextOf('subscribed')
    return client
  }
  const stillOpen = async (client: ChatClient, topic: string): Promise<void> => {
    client.send({ type: 'subscribe', topic })
    t.match(await client.nextOf('subscribed'), { topic }, 'this socket stays open')
  }

  await t.test('logout everywhere', async (t) => {
    const second = await loginOn(b, alice.username)
    const sockets = [await open(a, alice.cookie, 'everywhere'), await open(b, alice.cookie, 'everywhere'), await open(b, second, 'everywhere')]
    const bobs = await open(a, bob.cookie, 'everywhere')
    const out = await b.inject({ method: 'POST', url: '/api/logout', headers: { cookie: second }, payload: { everywhere: true } })
    t.equal(out.statusCode, 204)
    for (const socket of sockets) t.equal((await socket.closed).code, CloseCode.loggedOut, '4401')
    for (const cookie of [alice.cookie, second]) {
      t.equal((await a.inject({ url: '/api/me', headers: { cookie } })).statusCode, 401, 'every session of the user has ended')
    }
    await stillOpen(bobs, 'everywhere')
    t.equal((await b.inject({ url: '/api/me', headers: { cookie: bob.cookie } })).statusCode, 200, 'another user\'s session stays')
    bobs.close()
  })

  await t.test('the 21st login ends the oldest session, whose socket on the other instance closes', async (t) => {
    const oldest = await loginOn(a, bob.username)
    const next = await loginOn(a, bob.username)
    const onA = await open(a, oldest, 'cap')
    const nextOnA = await open(a, next, 'cap')
    // bob's sessions now: the one from registration, oldest, next; 18 more make 21, ending the registration's.
    for (let i = 0; i < 18; i++) await loginOn(b, bob.username)
    t.equal((await a.inject({ url: '/api/me', headers: { cookie: bob.cookie } })).statusCode, 401, 'the 21st ended the first')
    t.equal((await a.inject({ url: '/api/me', headers: { cookie: oldest } })).statusCode, 200)
    await loginOn(b, bob.username)
    t.equal((await onA.closed).code, CloseCode.loggedOut, 'the next login on b ended the oldest; its socket on a closed with 4401')
    await stillOpen(nextOnA, 'cap')
    t.equal((await b.db.query('SELECT 1 FROM sessions WHERE user_id = $1', [bob.id])).length, 20)
    nextOnA.close()
  })
})
