import t, { type Test } from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { buildTestApp, register } from '../helpers/app.js'
import { connect, type ChatClient } from '../helpers/chat.js'
import { sessionCookie } from '../helpers/http.js'
import { startInstances } from '../helpers/instances.js'
import { CloseCode } from '../../src/protocol.js'

const login = async (app: FastifyInstance, username: string, password = 'correct horse', remoteAddress = '127.0.0.1'): Promise<LightMyRequestResponse> =>
  await app.inject({ method: 'POST', url: '/api/login', payload: { username, password }, remoteAddress })

const changePassword = async (app: FastifyInstance, cookie: string | undefined, payload: unknown, remoteAddress = '127.0.0.1'): Promise<LightMyRequestResponse> =>
  await app.inject({ method: 'POST', url: '/api/password', payload: payload as Record<string, unknown>, remoteAddress, headers: cookie === undefined ? {} : { cookie } })

const me = async (app: FastifyInstance, cookie: string): Promise<number> => (await app.inject({ url: '/api/me', headers: { cookie } })).statusCode

async function openSocket (app: FastifyInstance, cookie: string, topic = 'general'): Promise<ChatClient> {
  const client = await connect(app, cookie, { topic })
  await client.nextOf('subscribed')
  return client
}

/** The socket is open: a subscribe is answered. */
async function stillOpen (t: Test, client: ChatClient, topic: string): Promise<void> {
  client.send({ type: 'subscribe', topic })
  t.match(await client.nextOf('subscribed'), { topic }, 'this socket stays open')
}

t.test('the password change', async (t) => {
  const app = await buildTestApp(t, { LOGIN_ATTEMPTS: '100' })

  await t.test('the new password works, the old one no more; every other session ends, its sockets with 4401; the caller\'s stays', async (t) => {
    const alice = await register(app)
    const [second, third] = [sessionCookie(await login(app, alice.username)), sessionCookie(await login(app, alice.username))]
    const bob = await register(app)
    const others = [await openSocket(app, second), await openSocket(app, third)]
    const own = await openSocket(app, alice.cookie)
    const bobs = await openSocket(app, bob.cookie)

    const changed = await changePassword(app, alice.cookie, { current: 'correct horse', new: 'battery staple' })
    t.equal(changed.statusCode, 204)
    for (const socket of others) t.same(await socket.closed, { code: CloseCode.loggedOut, reason: 'logged out' })
    t.equal(await me(app, second), 401, 'another session ended')
    t.equal(await me(app, third), 401)
    t.equal(await me(app, alice.cookie), 200, 'the caller\'s session stays')
    await stillOpen(t, own, 'after-change')
    await stillOpen(t, bobs, 'after-change')
    t.equal(await me(app, bob.cookie), 200, 'another user\'s session stays')

    t.equal((await login(app, alice.username)).statusCode, 401, 'the old password no longer logs in')
    t.equal((await login(app, alice.username, 'battery staple')).statusCode, 200, 'the new one does')
    own.close()
    bobs.close()
  })

  await t.test('a wrong current password is 401 and changes nothing', async (t) => {
    const carol = await register(app)
    const second = sessionCookie(await login(app, carol.username))
    const wrong = await changePassword(app, carol.cookie, { current: 'not the password', new: 'battery staple' })
    t.equal(wrong.statusCode, 401)
    t.same(wrong.json(), { error: 'invalid_credentials', message: 'The current password is wrong' })
    t.equal(await me(app, carol.cookie), 200, 'still logged in')
    t.equal(await me(app, second), 200, 'and so is the other session')
    t.equal((await login(app, carol.username)).statusCode, 200, 'the password is the same')
  })

  await t.test('the new password keeps the rules of register; a body it cannot read is 400; no session is 401', async (t) => {
    const dave = await register(app)
    const rule = 'The new password: a password is 8 to 256 characters'
    const invalid: Array<[unknown, string]> = [
      [{ current: 'correct horse', new: 'short' }, rule],
      [{ current: 'correct horse', new: 'p'.repeat(257) }, rule],
      [{ current: 'correct horse' }, rule],
      [{ new: 'battery staple' }, 'Send {"current","new"} as JSON'],
      [{ current: 'correct horse', new: 'battery staple', everywhere: true }, 'Send {"current","new"} as JSON'],
      [undefined, 'Send {"current","new"} as JSON']
    ]
    for (const [payload, message] of invalid) {
      const response = await changePassword(app, dave.cookie, payload)
      t.equal(response.statusCode, 400, JSON.stringify(payload))
      t.same(response.json(), { error: 'bad_request', message })
    }
    const anonymous = await changePassword(app, undefined, { current: 'correct horse', new: 'battery staple' })
    t.equal(anonymous.statusCode, 401)
    t.match(anonymous.json(), { error: 'unauthorized' })
    t.equal((await login(app, dave.username)).statusCode, 200, 'the password is the same')
  })
})

t.test('wrong current passwords count against the login attempt limits, like logins', async (t) => {
  const app = await buildTestApp(t, { LOGIN_ATTEMPTS: '3' })
  const erin = await register(app)
  for (let i = 0; i < 3; i++) {
    t.equal((await changePassword(app, erin.cookie, { current: `guess ${i}`, new: 'battery staple' }, '10.2.0.1')).statusCode, 401, `guess ${i + 1}`)
  }
  const limited = await changePassword(app, erin.cookie, { current: 'correct horse', new: 'battery staple' }, '10.2.0.1')
  t.equal(limited.statusCode, 429, 'even the right password waits')
  t.match(limited.json(), { error: 'too_many_requests', retryAfterMs: Number })
  t.ok(Number(limited.headers['retry-after']) > 0, 'with Retry-After')
  t.equal((await login(app, erin.username, 'correct horse', '10.2.0.1')).statusCode, 429, 'and so is a login for the name from that address: one count')
  t.equal((await login(app, erin.username, 'correct horse', '10.2.0.2')).statusCode, 200, 'the password did not change')
})

t.test('on two instances: a password change closes the other sessions\' sockets with 4401 on both', async (t) => {
  const { instances: [{ app: a, user: alice }, { app: b }] } = await startInstances(t, 2)
  const second = sessionCookie(await login(b, alice.username))
  const onA = await openSocket(a, second)
  const onB = await openSocket(b, second)
  const own = await openSocket(b, alice.cookie)
  t.equal((await changePassword(a, alice.cookie, { current: 'correct horse', new: 'battery staple' })).statusCode, 204)
  t.equal((await onA.closed).code, CloseCode.loggedOut, 'on the instance of the change')
  t.equal((await onB.closed).code, CloseCode.loggedOut, 'on the other one')
  await stillOpen(t, own, 'kept')
  t.equal(await me(b, alice.cookie), 200)
  own.close()
})
