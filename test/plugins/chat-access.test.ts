import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, register, uniqueName, unhurriedCommits } from '../helpers/app.js'
import { connect, type ChatClient } from '../helpers/chat.js'
import { deleteMemberRow, frameAfterProbe, makePrivateTopic, removeMember, setMember } from '../helpers/private-topics.js'
import type { ServerFrame } from '../../src/protocol.js'
import type { Subscriber } from '../../src/topic-bus.js'

/** Publishes over HTTP as `cookie`: the status and the body. */
async function postMessage (app: FastifyInstance, cookie: string, topic: string, text: string): Promise<{ status: number, body: Record<string, unknown> }> {
  const response = await app.inject({ method: 'POST', url: `/api/topics/${topic}/messages`, headers: { cookie }, payload: { text } })
  return { status: response.statusCode, body: response.json() }
}

async function count (app: FastifyInstance, topic: string): Promise<number> {
  const rows = await app.db.query<{ n: number }>('SELECT count(*)::int AS n FROM messages WHERE topic = $1', [topic])
  return rows[0]?.n ?? -1
}

/** Proves that nothing was queued for the client before this point (frameAfterProbe). */
async function nothingBefore (t: Test, client: ChatClient, probe: string, what: string): Promise<void> {
  t.match(await frameAfterProbe(client, probe), { type: 'subscribed', topic: probe }, what)
}

t.test('private topics on the WebSocket and the publish path', async (t) => {
  const app = await buildTestApp(t, {}, unhurriedCommits)
  const owner = await register(app, uniqueName('owner'))
  const member = await register(app, uniqueName('member'))
  const stranger = await register(app, uniqueName('stranger'))
  await makePrivateTopic(app, 'secret', owner, [member])
  const forbidden = { type: 'error', code: 'forbidden', topic: 'secret' }

  await t.test('a non-member is refused everywhere, with the topic, and the socket stays open', async (t) => {
    const client = await connect(app, stranger.cookie, { topic: 'secret' })
    t.match(await client.next(), forbidden, 'the first frame of a /chat URL naming the topic is forbidden, not subscribed')
    client.send({ type: 'subscribe', topic: 'secret' })
    t.match(await client.next(), forbidden, 'subscribe')
    client.send({ type: 'subscribe', topic: 'secret', since: 0 })
    t.match(await client.next(), forbidden, 'since')
    client.send({ type: 'publish', topic: 'secret', text: 'let me in', ref: 'p-1' })
    t.match(await client.next(), { ...forbidden, ref: 'p-1' }, 'publish, with its ref')
    t.equal(await count(app, 'secret'), 0, 'nothing stored')
    client.send({ type: 'subscribe', topic: 'dm.nobody' })
    t.match(await client.next(), { type: 'error', code: 'bad_topic', topic: 'dm.nobody' }, 'a dm. name that is no topic is bad_topic')
    client.send({ type: 'subscribe', topic: 'open' })
    t.match(await client.next(), { type: 'subscribed', topic: 'open' }, 'and the connection works')
    t.same(client.queued, [])
    client.close()
  })

  await t.test('HTTP publish to a private topic as a non-member is 403 forbidden', async (t) => {
    const refused = await postMessage(app, stranger.cookie, 'secret', 'over http')
    t.equal(refused.status, 403)
    t.equal(refused.body.error, 'forbidden')
    t.equal((await postMessage(app, stranger.cookie, 'dm.nobody', 'hi')).status, 400, 'bad_topic for a dm. name that is no topic')
    t.equal(await count(app, 'secret'), 0)
    t.equal((await postMessage(app, member.cookie, 'secret', 'from a member')).status, 201, 'a member publishes over HTTP')
  })

  await t.test('a member subscribes, publishes and receives', async (t) => {
    const client = await connect(app, member.cookie, { topic: 'secret' })
    const subscribed = await client.nextOf('subscribed')
    t.same(subscribed.history.map((m) => m.text), ['from a member'])
    client.send({ type: 'publish', topic: 'secret', text: 'hello', ref: 'm-1' })
    const ack = await client.nextOf('ack')
    t.match(await client.nextOf('message'), { id: ack.id, topic: 'secret', text: 'hello' })
    client.send({ type: 'subscribe', topic: 'secret', since: 0 })
    t.same((await client.nextOf('subscribed')).history.map((m) => m.text), ['from a member', 'hello'], 'since')
    client.close()
  })

  await t.test('a removed member is unsubscribed at once, gets nothing after, and is refused from then on', async (t) => {
    const leaver = await register(app, uniqueName('leaver'))
    await setMember(app, 'secret', leaver, owner)
    const watching = await connect(app, leaver.cookie, { topic: 'secret' })
    await watching.nextOf('subscribed')
    const elsewhere = await connect(app, leaver.cookie, { topic: 'lobby-1' })
    await elsewhere.nextOf('subscribed')
    const ownerClient = await connect(app, owner.cookie, { topic: 'secret' })
    await ownerClient.nextOf('subscribed')
    await watching.nextOf('joined')

    await removeMember(app, 'secret', leaver, owner)
    t.same(await watching.next(), { type: 'unsubscribed', topic: 'secret', reason: 'removed' })
    ownerClient.send({ type: 'publish', topic: 'secret', text: 'after the removal', ref: 'o-1' })
    // The owner sees the removed user leave, and the message, in either order.
    const seen: ServerFrame[] = []
    while (!seen.some((frame) => frame.type === 'message') || !seen.some((frame) => frame.type === 'left')) seen.push(await ownerClient.next())
    t.match(seen.find((frame) => frame.type === 'left'), { topic: 'secret', user: leaver.username }, 'the others see the removed user leave')
    await nothingBefore(t, watching, 'probe-1', 'no message of the topic after unsubscribed')
    await nothingBefore(t, elsewhere, 'probe-2', 'a socket not subscribed to the topic hears nothing of it')

    watching.send({ type: 'subscribe', topic: 'secret' })
    t.match(await watching.next(), forbidden, 'the next subscribe is forbidden')
    watching.send({ type: 'publish', topic: 'secret', text: 'still here?', ref: 'l-1' })
    t.match(await watching.next(), { ...forbidden, ref: 'l-1' }, 'and the next publish')
    t.equal((await postMessage(app, leaver.cookie, 'secret', 'over http')).status, 403)
    watching.close()
    elsewhere.close()
    ownerClient.close()
  })

  await t.test('an added user hears `added` on every open socket; a change of role is no `added`', async (t) => {
    const newcomer = await register(app, uniqueName('newcomer'))
    const first = await connect(app, newcomer.cookie, { topic: 'lobby-2' })
    await first.nextOf('subscribed')
    const second = await connect(app, newcomer.cookie, { topic: 'hall' })
    await second.nextOf('subscribed')
    const bystander = await connect(app, stranger.cookie, { topic: 'hall' })
    await bystander.nextOf('subscribed')

    await setMember(app, 'secret', newcomer, owner)
    t.same(await first.next(), { type: 'added', topic: 'secret', by: owner.username })
    t.same(await second.nextOf('added'), { type: 'added', topic: 'secret', by: owner.username })
    second.send({ type: 'subscribe', topic: 'secret' })
    t.match(await second.nextOf('subscribed'), { topic: 'secret' }, 'and may subscribe now')

    await setMember(app, 'secret', newcomer, owner, 'owner')
    await nothingBefore(t, first, 'probe-3', 'a change of role sends no added')
    await nothingBefore(t, bystander, 'probe-4', 'nobody else hears of it')
    first.close()
    second.close()
    bystander.close()
  })

  await t.test('the topic bus delivers nothing of a private topic to a subscriber who is not a member', async (t) => {
    const frames: ServerFrame[] = []
    let heard: (() => void) | undefined
    const direct = (): Subscriber => ({
      send (frame) { frames.push(Buffer.isBuffer(frame) ? JSON.parse(frame.toString()) as ServerFrame : frame); heard?.() },
      reply (frame) { frames.push(frame); heard?.() }
    })
    const subscribed = (topic: string) => (history: { messages: unknown[] }): ServerFrame => ({ type: 'subscribed', topic, history: [], present: [String(history.messages.length)] })
    // Past the chat's checks, straight on the bus.
    await t.rejects(app.topicBus.subscribe('secret', direct(), { historyLimit: 5, userId: stranger.id }, subscribed('secret')),
      { name: 'AccessRefusedError' }, 'a non-member is refused as the subscription ends')
    t.same(frames, [], 'and gets nothing of the topic')

    // A member subscribed on the bus alone, whom the chat cannot unsubscribe: removed, the filter holds.
    const quiet = await register(app, uniqueName('quiet'))
    await setMember(app, 'secret', quiet, owner)
    const sub = direct()
    await app.topicBus.subscribe('secret', sub, { historyLimit: 5, userId: quiet.id }, subscribed('secret'))
    t.equal(frames.length, 1, 'subscribed')
    await removeMember(app, 'secret', quiet, owner)
    const ownerClient = await connect(app, owner.cookie, { topic: 'secret' })
    await ownerClient.nextOf('subscribed')
    ownerClient.send({ type: 'publish', topic: 'secret', text: 'filtered', ref: 'f-1' })
    t.match(await ownerClient.nextOf('message'), { text: 'filtered' })
    t.same(frames.map((frame) => frame.type), ['subscribed'], 'the removed member got nothing')
    app.topicBus.unsubscribe('secret', sub)
    ownerClient.close()
  })

  await t.test('members forgotten (a LISTEN outage): read again before anything is delivered, and the removed are unsubscribed', async (t) => {
    const unheard = await register(app, uniqueName('unheard'))
    await setMember(app, 'secret', unheard, owner)
    // The one who stays first: the other then hears no `joined`.
    const stays = await connect(app, member.cookie, { topic: 'secret' })
    await stays.nextOf('subscribed')
    const removed = await connect(app, unheard.cookie, { topic: 'secret' })
    await removed.nextOf('subscribed')
    const ownerClient = await connect(app, owner.cookie, { topic: 'lobby-3' })
    await ownerClient.nextOf('subscribed')

    // Removed with no word to this instance, as if it was said while its LISTEN connection was down.
    await deleteMemberRow(app, 'secret', unheard)
    app.access.forgetMembers()
    t.equal(app.access.knownVisibility('secret'), undefined, 'the members are forgotten')
    ownerClient.send({ type: 'publish', topic: 'secret', text: 'while forgotten', ref: 'w-1' })
    t.match(await stays.nextOf('message'), { text: 'while forgotten' }, 'a member gets it, once the members are read again')
    await nothingBefore(t, removed, 'probe-5', 'the removed member gets nothing, though no one told this instance')

    // The LISTEN connection back: the catch-up reads the members again first and unsubscribes the removed.
    app.topicBus.catchUp()
    t.same(await removed.next(), { type: 'unsubscribed', topic: 'secret', reason: 'removed' })
    ownerClient.send({ type: 'publish', topic: 'secret', text: 'after the catch-up', ref: 'w-2' })
    t.match(await stays.nextOf('message'), { text: 'after the catch-up' })
    await nothingBefore(t, removed, 'probe-6', 'nothing after unsubscribed')
    removed.close()
    stays.close()
    ownerClient.close()
  })
})
