import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, register, uniqueName } from '../helpers/app.js'
import { connect } from '../helpers/chat.js'
import { bearer, connectProgram, makeBot } from '../helpers/programs.js'
import { botKeyHash, botKeyPrefix, maxBotsPerOwner } from '../../src/bots.js'
import { CloseCode } from '../../src/protocol.js'
import { setAdmin } from '../../src/users.js'

async function keyHashes (app: FastifyInstance): Promise<string[]> {
  return (await app.db.query<{ key_hash: string }>('SELECT key_hash FROM bot_keys')).map((row) => row.key_hash)
}

t.test('bots and their keys', async (t) => {
  const app = await buildTestApp(t)
  const alice = await register(app, uniqueName('alice'))
  const bob = await register(app, uniqueName('bob'))

  await t.test('POST /api/bots: 201 with the key once, only its hash stored; 400, 401, 409', async (t) => {
    const name = uniqueName('Helper')
    const made = await app.inject({ method: 'POST', url: '/api/bots', headers: { cookie: alice.cookie }, payload: { name } })
    t.equal(made.statusCode, 201)
    const { bot, key } = made.json<{ bot: { name: string, owner: string }, key: string }>()
    t.same(bot, { name, owner: alice.username })
    t.match(key, new RegExp(`^${botKeyPrefix}[A-Za-z0-9_-]{43}$`), 'a prefixed key of 32 random bytes')
    t.equal(made.headers['cache-control'], 'no-store')
    const hashes = await keyHashes(app)
    t.ok(hashes.includes(botKeyHash(key)), 'its SHA-256 is stored')
    t.notOk(hashes.includes(key), 'the key itself is not')

    const post = async (payload: unknown, cookie: string | null = alice.cookie): Promise<{ statusCode: number, error: string }> => {
      const response = await app.inject({ method: 'POST', url: '/api/bots', headers: cookie === null ? {} : { cookie }, payload: payload as object })
      return { statusCode: response.statusCode, error: response.json<{ error: string }>().error }
    }
    t.same(await post({ name: name.toLowerCase() }), { statusCode: 409, error: 'name_taken' }, 'a bot\'s name, in any case')
    t.same(await post({ name: bob.username.toUpperCase() }), { statusCode: 409, error: 'name_taken' }, 'a user\'s name, in any case')
    t.same(await post({ name: 'no spaces allowed' }), { statusCode: 400, error: 'bad_request' }, 'the name rule')
    t.same(await post({ name: 'ab' }), { statusCode: 400, error: 'bad_request' })
    t.same(await post({}), { statusCode: 400, error: 'bad_request' })
    t.same(await post({ name: uniqueName('bot') }, null), { statusCode: 401, error: 'unauthorized' }, 'no session')
    t.same(await post({ name: uniqueName('bot') }, ''), { statusCode: 401, error: 'unauthorized' })

    const login = await app.inject({ method: 'POST', url: '/api/login', payload: { username: name, password: 'correct horse' } })
    t.equal(login.statusCode, 401, 'a password login with a bot\'s name is 401')
    const asBot = await app.inject({ method: 'POST', url: '/api/bots', headers: bearer(key), payload: { name: uniqueName('bot') } })
    t.equal(asBot.statusCode, 403, 'a bot makes no bots')
  })

  await t.test('GET /api/bots lists the caller\'s bots with a live key', async (t) => {
    const carol = await register(app, uniqueName('carol'))
    const one = await makeBot(app, carol.cookie)
    const two = await makeBot(app, carol.cookie)
    const list = await app.inject({ url: '/api/bots', headers: { cookie: carol.cookie } })
    t.equal(list.statusCode, 200)
    const { bots } = list.json<{ bots: Array<{ name: string, createdAt: string }> }>()
    t.same(bots.map((b) => b.name).sort(), [one.name, two.name].sort())
    t.ok(bots.every((b) => !Number.isNaN(Date.parse(b.createdAt))), 'with when each was made')
    t.equal((await app.inject({ method: 'DELETE', url: `/api/bots/${one.name}`, headers: { cookie: carol.cookie } })).statusCode, 204)
    t.same((await app.inject({ url: '/api/bots', headers: { cookie: carol.cookie } })).json<{ bots: Array<{ name: string }> }>().bots.map((b) => b.name), [two.name],
      'a revoked bot is no longer listed')
    t.equal((await app.inject({ url: '/api/bots' })).statusCode, 401)
  })

  await t.test(`at most ${maxBotsPerOwner} bots with a key: then 409 too_many_bots, and a revoke makes room`, async (t) => {
    const dave = await register(app, uniqueName('dave'))
    const bots = []
    for (let i = 0; i < maxBotsPerOwner; i++) bots.push(await makeBot(app, dave.cookie))
    const over = await app.inject({ method: 'POST', url: '/api/bots', headers: { cookie: dave.cookie }, payload: { name: uniqueName('bot') } })
    t.equal(over.statusCode, 409)
    t.equal(over.json<{ error: string }>().error, 'too_many_bots')
    t.equal((await app.inject({ method: 'DELETE', url: `/api/bots/${bots[0]?.name ?? ''}`, headers: { cookie: dave.cookie } })).statusCode, 204)
    await makeBot(app, dave.cookie)
  })

  await t.test('Bearer KEY on HTTP: publish and history as the bot, no cookie given; a wrong key is 401', async (t) => {
    const bot = await makeBot(app, alice.cookie)
    const published = await app.inject({ method: 'POST', url: '/api/topics/bots-http/messages', headers: bearer(bot.key), payload: { text: 'beep' } })
    t.equal(published.statusCode, 201)
    t.match(published.json(), { message: { author: bot.name, text: 'beep', bot: true } }, 'a bot\'s message says so')
    t.notOk(published.headers['set-cookie'], 'a program gets no session cookie')
    const history = await app.inject({ url: '/api/topics/bots-http/messages', headers: bearer(bot.key) })
    t.equal(history.statusCode, 200)
    t.match(history.json(), { messages: [{ author: bot.name, text: 'beep', bot: true }] }, 'in history too')
    const me = await app.inject({ url: '/api/me', headers: bearer(bot.key) })
    t.match(me.json(), { user: { name: bot.name } })
    t.notOk(me.headers['set-cookie'], 'not even where the route writes to its session')

    // With a user's cookie too, the key decides: the session is not read.
    const withCookie = await app.inject({ method: 'POST', url: '/api/topics/bots-http/messages', headers: { ...bearer(bot.key), cookie: bob.cookie }, payload: { text: 'still the bot' } })
    t.match(withCookie.json(), { message: { author: bot.name } })
    const foreign = await app.inject({ method: 'POST', url: '/api/topics/bots-http/messages', headers: { ...bearer(bot.key) }, payload: { text: 'from anywhere' } })
    t.equal(foreign.statusCode, 201)

    for (const wrong of [`${botKeyPrefix}${'A'.repeat(43)}`, 'not-a-key', '']) {
      const refused = await app.inject({ url: '/api/topics/bots-http/messages', headers: bearer(wrong) })
      t.equal(refused.statusCode, 401, `a wrong key (${JSON.stringify(wrong)}) is 401`)
      t.equal(refused.json<{ error: string }>().error, 'unauthorized')
    }
    const refusedHealth = await app.inject({ url: '/healthz', headers: bearer('not-a-key') })
    t.equal(refusedHealth.statusCode, 401, 'on every route')
  })

  await t.test('/chat with Bearer KEY: no ticket, cookie or Origin; a wrong key is 401 before the upgrade; a revoke closes it 4401', async (t) => {
    const bot = await makeBot(app, alice.cookie)
    const socket = await connectProgram(app, { bearer: bot.key }, { topic: 'bots-ws', headers: { origin: 'https://elsewhere.example' } })
    t.match(await socket.nextOf('subscribed'), { topic: 'bots-ws', present: [bot.name] })
    socket.send({ type: 'publish', topic: 'bots-ws', text: 'hello', ref: 'r1' })
    t.match(await socket.nextOf('ack'), { ref: 'r1' })
    t.match(await socket.nextOf('message'), { author: bot.name, text: 'hello' })

    await t.rejects(connectProgram(app, { bearer: `${botKeyPrefix}${'B'.repeat(43)}` }), /Unexpected server response: 401/, 'a wrong key')

    t.equal((await app.inject({ method: 'DELETE', url: '/api/bots/no-such-bot', headers: { cookie: alice.cookie } })).statusCode, 404, 'an unknown bot')
    const byOther = await app.inject({ method: 'DELETE', url: `/api/bots/${bot.name}`, headers: { cookie: bob.cookie } })
    t.equal(byOther.statusCode, 403, 'another user may not revoke it')
    t.equal(byOther.json<{ error: string }>().error, 'forbidden')
    t.equal((await app.inject({ method: 'DELETE', url: `/api/bots/${bot.name}` })).statusCode, 401)
    t.equal((await app.inject({ method: 'DELETE', url: `/api/bots/${bot.name.toUpperCase()}`, headers: { cookie: alice.cookie } })).statusCode, 204, 'its owner may')
    t.equal((await socket.closed).code, CloseCode.loggedOut, 'the bot\'s socket closes with 4401')
    t.equal((await app.inject({ method: 'DELETE', url: `/api/bots/${bot.name}`, headers: { cookie: alice.cookie } })).statusCode, 404, 'revoked already')
    t.equal((await app.inject({ url: '/api/me', headers: bearer(bot.key) })).statusCode, 401, 'a revoked key is 401')
    await t.rejects(connectProgram(app, { bearer: bot.key }), /Unexpected server response: 401/, 'and before the upgrade')
  })

  await t.test('an administrator may revoke any bot\'s key', async (t) => {
    const admin = await register(app, uniqueName('admin'))
    await setAdmin(app.db, admin.username, true)
    const bot = await makeBot(app, bob.cookie)
    t.equal((await app.inject({ method: 'DELETE', url: `/api/bots/${bot.name}`, headers: { cookie: admin.cookie } })).statusCode, 204)
    t.equal((await app.inject({ url: '/api/me', headers: bearer(bot.key) })).statusCode, 401)
  })

  await t.test('a disabled owner\'s bots stop: sockets closed with 4401, keys refused until enabled', async (t) => {
    const admin = await register(app, uniqueName('admin'))
    await setAdmin(app.db, admin.username, true)
    const erin = await register(app, uniqueName('erin'))
    const bot = await makeBot(app, erin.cookie)
    const socket = await connectProgram(app, { bearer: bot.key })
    await socket.nextOf('subscribed')
    const watcher = await connect(app, alice.cookie)
    await watcher.nextOf('subscribed')

    t.equal((await app.inject({ method: 'POST', url: `/api/admin/users/${erin.username}/disable`, headers: { cookie: admin.cookie } })).statusCode, 204)
    t.equal((await socket.closed).code, CloseCode.loggedOut, 'the bot\'s socket closes with 4401')
    const refused = await app.inject({ url: '/api/bots', headers: bearer(bot.key) })
    t.equal(refused.statusCode, 401, 'its key is refused while the owner is disabled')
    t.match(refused.json<{ message: string }>().message, /owner is disabled/)
    await t.rejects(connectProgram(app, { bearer: bot.key }), /Unexpected server response: 401/)
    t.equal(watcher.socket.readyState, watcher.socket.OPEN, 'another user\'s socket stays open')

    t.equal((await app.inject({ method: 'POST', url: `/api/admin/users/${erin.username}/enable`, headers: { cookie: admin.cookie } })).statusCode, 204)
    t.equal((await app.inject({ url: '/api/bots', headers: bearer(bot.key) })).statusCode, 200, 'enabled again, the key works')
    watcher.close()
  })

  await t.test('a key deleted without a word (no event) still closes its sockets at the periodic check', async (t) => {
    const bot = await makeBot(app, alice.cookie)
    const kept = await makeBot(app, alice.cookie)
    const socket = await connectProgram(app, { bearer: bot.key })
    await socket.nextOf('subscribed')
    const stays = await connectProgram(app, { bearer: kept.key })
    await stays.nextOf('subscribed')
    await app.db.query('DELETE FROM bot_keys WHERE key_hash = $1', [botKeyHash(bot.key)])
    await app.closeEndedSessions()
    t.equal((await socket.closed).code, CloseCode.loggedOut)
    stays.send({ type: 'subscribe', topic: 'still-here' })
    t.match(await stays.nextOf('subscribed'), { topic: 'still-here' }, 'a bot with its key stays')
    stays.close()
  })
})
