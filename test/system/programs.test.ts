import t from 'tap'
import { SignJWT } from 'jose'
import { register, uniqueName, unhurriedCommits } from '../helpers/app.js'
import { connect } from '../helpers/chat.js'
import { startInstances } from '../helpers/instances.js'
import { bearer, connectProgram, makeBot } from '../helpers/programs.js'
import { CloseCode } from '../../src/protocol.js'

// Programs on two instances of one deployment: a key revoked on one closes the bot's
// sockets on the other; a token made for one is good on both.

const secret = 'the application secret both instances share!!'

async function token (sub: string, seconds: number): Promise<string> {
  return await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub)
    .setExpirationTime(Math.floor(Date.now() / 1000) + seconds).sign(new TextEncoder().encode(secret))
}

t.test('bots and tokens on two instances', async (t) => {
  const { instances: [{ app: a, user: alice }, { app: b }] } = await startInstances(t, 2, { AUTH_JWT_SECRET: secret }, unhurriedCommits)

  await t.test('a key revoked on a closes the bot\'s socket on b with 4401', async (t) => {
    const bot = await makeBot(a, alice.cookie)
    const onB = await connectProgram(b, { bearer: bot.key }, { topic: 'programs' })
    await onB.nextOf('subscribed')
    const watcher = await connect(b, alice.cookie, { topic: 'programs' })
    await watcher.nextOf('subscribed')
    onB.send({ type: 'publish', topic: 'programs', text: 'from b', ref: 'b1' })
    t.match(await watcher.nextOf('message'), { author: bot.name, text: 'from b' })

    t.equal((await a.inject({ method: 'DELETE', url: `/api/bots/${bot.name}`, headers: { cookie: alice.cookie } })).statusCode, 204)
    t.equal((await onB.closed).code, CloseCode.loggedOut, 'closed on b')
    t.equal((await b.inject({ url: '/api/me', headers: bearer(bot.key) })).statusCode, 401, 'and the key is refused there')
    t.equal(watcher.socket.readyState, watcher.socket.OPEN, 'the owner\'s own socket stays')
    watcher.close()
  })

  await t.test('a token user made on a opens a socket on b; its token expires there with 4401 unless replaced', async (t) => {
    const name = uniqueName('app')
    t.equal((await a.inject({ url: '/api/me', headers: bearer(await token(name, 600)) })).statusCode, 200, 'first sight on a')
    const bob = await register(a, uniqueName('bob'))
    const watcher = await connect(a, bob.cookie, { topic: 'programs-token' })
    await watcher.nextOf('subscribed')

    const kept = await connectProgram(b, { token: await token(name, 3) }, { topic: 'programs-token' })
    await kept.nextOf('subscribed')
    const expiring = await connectProgram(b, { token: await token(name, 3) })
    await expiring.nextOf('subscribed')
    kept.send({ type: 'auth', token: await token(name, 600) })
    kept.send({ type: 'publish', topic: 'programs-token', text: 'from the app', ref: 't1' })
    t.match(await kept.nextOf('ack'), { ref: 't1' })
    t.match(await watcher.nextOf('message'), { author: name, text: 'from the app' }, 'its message reaches a')

    t.equal((await expiring.closed).code, CloseCode.loggedOut, 'the socket without a new token closes 4401')
    kept.send({ type: 'publish', topic: 'programs-token', text: 'still here', ref: 't2' })
    t.match(await kept.nextOf('ack'), { ref: 't2' }, 'the one with a new token lives on')
    kept.close()
    watcher.close()
  })
})
