import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { register, uniqueName, unhurriedCommits } from '../helpers/app.js'
import { connect } from '../helpers/chat.js'
import { startInstances } from '../helpers/instances.js'
import { frameAfterProbe, makePrivateTopic, removeMember, type Someone } from '../helpers/private-topics.js'

// Removal holds on every instance: a member removed on one instance is unsubscribed on
// another at once, and an instance whose LISTEN connection was down when it happened reads
// the members again before it delivers anything of the topic.

/** Publishes over HTTP on `app`; returns the stored message's text once it is committed. */
async function publish (app: FastifyInstance, cookie: string, topic: string, text: string): Promise<string> {
  const response = await app.inject({ method: 'POST', url: `/api/topics/${topic}/messages`, headers: { cookie }, payload: { text } })
  if (response.statusCode !== 201) throw new Error(`publish: ${response.statusCode} ${response.body}`)
  return text
}

t.test('private topics on two instances', async (t) => {
  const { postgres, instances: [{ app: a, user: alice }, { app: b }] } = await startInstances(t, 2, {}, unhurriedCommits)
  const bob = await register(b, uniqueName('bob'))
  const carol = await register(b, uniqueName('carol'))
  const dave = await register(b, uniqueName('dave'))
  const members: Someone[] = [bob, carol]

  // Dave, no member, watches on b the whole time: nothing of a private topic may reach him.
  const watcher = await connect(b, dave.cookie, { topic: 'lobby' })
  await watcher.nextOf('subscribed')

  await t.test('a removal made on one instance unsubscribes the member on another, and nothing follows', async (t) => {
    await makePrivateTopic(a, 'crew', alice, members)
    // Carol first: Bob then hears no `joined`, and his next frame is what the removal sends.
    const stays = await connect(b, carol.cookie, { topic: 'crew' })
    await stays.nextOf('subscribed')
    const removed = await connect(b, bob.cookie, { topic: 'crew' })
    await removed.nextOf('subscribed')
    watcher.send({ type: 'subscribe', topic: 'crew' })
    t.match(await watcher.next(), { type: 'error', code: 'forbidden', topic: 'crew' }, 'a non-member is refused on b')

    await removeMember(a, 'crew', bob, alice)
    t.same(await removed.next(), { type: 'unsubscribed', topic: 'crew', reason: 'removed' }, 'removed on a, unsubscribed on b')
    const text = await publish(a, alice.cookie, 'crew', 'after the removal')
    t.match(await stays.nextOf('message'), { topic: 'crew', text }, 'a member on b gets the next message')
    t.match(await frameAfterProbe(removed, 'probe-1'), { type: 'subscribed', topic: 'probe-1' }, 'the removed member got nothing after unsubscribed')
    removed.send({ type: 'subscribe', topic: 'crew', since: 0 })
    t.match(await removed.next(), { type: 'error', code: 'forbidden', topic: 'crew' }, 'and is refused on b from then on')
    stays.close()
    removed.close()
  })

  await t.test("a removal made while b's LISTEN connection is down: b reads the members again before it delivers", async (t) => {
    await makePrivateTopic(a, 'crew2', alice, members)
    const stays = await connect(b, carol.cookie, { topic: 'crew2' })
    await stays.nextOf('subscribed')
    const removed = await connect(b, bob.cookie, { topic: 'crew2' })
    await removed.nextOf('subscribed')
    t.equal(await publish(a, alice.cookie, 'crew2', 'before'), 'before')
    t.match(await removed.nextOf('message'), { text: 'before' }, 'a member on b gets it while a member')
    t.match(await stays.nextOf('message'), { text: 'before' })

    // The instance built second connected its LISTEN last; it is gone once this returns.
    const [newest] = (await postgres.admin(
      "SELECT pid FROM pg_stat_activity WHERE application_name = 'canopy-bus' ORDER BY backend_start DESC LIMIT 1")).rows as Array<{ pid: number }>
    const killed = await postgres.admin('SELECT pg_terminate_backend($1, 10000) AS gone', [newest?.pid])
    t.equal(killed.rows[0]?.gone, true, "b's LISTEN connection is gone")
    // Neither the removal's event nor the message can reach b now: b reads them when it is back.
    await removeMember(a, 'crew2', bob, alice)
    const missed = await publish(a, alice.cookie, 'crew2', 'while b was deaf')

    t.same(await removed.next(), { type: 'unsubscribed', topic: 'crew2', reason: 'removed' },
      'back, b unsubscribes the removed member before it delivers anything of the topic')
    t.match(await stays.nextOf('message'), { topic: 'crew2', text: missed }, 'then catches up the member who stays')
    await b.topicBus.whenReady()
    const after = await publish(a, alice.cookie, 'crew2', 'after b is back')
    t.match(await stays.nextOf('message'), { text: after })
    t.match(await frameAfterProbe(removed, 'probe-2'), { type: 'subscribed', topic: 'probe-2' }, 'the removed member got nothing of either message')
    stays.close()
    removed.close()
  })

  t.match(await frameAfterProbe(watcher, 'probe-3'), { type: 'subscribed', topic: 'probe-3' }, 'the watcher saw no frame of a private topic')
  watcher.close()
})
