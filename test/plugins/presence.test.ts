import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import t from 'tap'
import { connectTcp, ticketFor, type ChatClient } from '../helpers/chat.js'
import { sessionCookie } from '../helpers/http.js'
import { startInstances } from '../helpers/instances.js'
import { buildTestApp, register, tempDir } from '../helpers/app.js'
import type { ServerFrame } from '../../src/protocol.js'

// Presence per user across instances, on a real Postgres (issue 16).

type Presence = Extract<ServerFrame, { type: 'joined' | 'left' }>

/** Collects the joined/left frames an observer gets, to be read at the end. */
function presenceLog (client: ChatClient): { frames: Presence[], next: (type: 'joined' | 'left', user: string) => Promise<void> } {
  const frames: Presence[] = []
  return {
    frames,
    next: async (type, user) => {
      for (;;) {
        const frame = await client.next()
        if (frame.type === 'joined' || frame.type === 'left') frames.push(frame)
        if (frame.type === type && frame.user === user) return
      }
    }
  }
}

t.test('two tabs of one user on two instances are one presence: one joined, one left, and present lists each user once', async (t) => {
  const { instances: [a, b] } = await startInstances(t, 2, { PRESENCE_TTL: '60' })
  const urlA = await a.app.listen({ port: 0, host: '127.0.0.1' })
  const urlB = await b.app.listen({ port: 0, host: '127.0.0.1' })
  const observer = await connectTcp(urlA, a.user.cookie, await ticketFor(a.app, a.user.cookie), { topic: 'room' })
  t.same((await observer.nextOf('subscribed')).present, [a.user.username], 'alone at first, and counted at once')
  const log = presenceLog(observer)

  // b's user, in two tabs: first on instance A, then on instance B.
  const ticket = await ticketFor(b.app, b.user.cookie)
  const tabOnA = await connectTcp(urlA, b.user.cookie, ticket, { topic: 'room' })
  t.same((await tabOnA.nextOf('subscribed')).present, [a.user.username, b.user.username].sort())
  await log.next('joined', b.user.username)
  const tabOnB = await connectTcp(urlB, b.user.cookie, ticket, { topic: 'room' })
  t.same((await tabOnB.nextOf('subscribed')).present, [a.user.username, b.user.username].sort(), 'the other instance sees the same users, each once')
  t.same((await a.app.inject({ url: '/api/topics/room/presence', headers: { cookie: a.user.cookie } })).json(),
    { present: [a.user.username, b.user.username].sort() }, 'and so does GET /api/topics/:topic/presence')

  tabOnA.close()
  await tabOnA.closed
  tabOnB.close()
  await log.next('left', b.user.username)
  // A marker through instance B, after everything B had to say.
  const marker = await connectTcp(urlB, b.user.cookie, ticket, { topic: 'marker' })
  await marker.nextOf('subscribed')
  observer.send({ type: 'subscribe', topic: 'marker' })
  await observer.nextOf('subscribed').catch(() => undefined)
  marker.send({ type: 'publish', topic: 'marker', text: 'done', ref: 'm1' })
  for (let frame = await observer.next(); frame.type !== 'message'; frame = await observer.next()) {
    if (frame.type === 'joined' || frame.type === 'left') log.frames.push(frame)
  }
  t.same(log.frames.filter((frame) => frame.topic === 'room').map((frame) => `${frame.type} ${frame.user}`),
    [`joined ${b.user.username}`, `left ${b.user.username}`], 'one joined and one left for two tabs on two instances')
  t.same((await a.app.inject({ url: '/api/topics/room/presence', headers: { cookie: a.user.cookie } })).json(), { present: [a.user.username] })
  for (const client of [observer, marker]) client.close()
})

t.test('an instance killed with SIGKILL: its users are left everywhere within PRESENCE_TTL', async (t) => {
  const { postgres, instances: [a] } = await startInstances(t, 1, { PRESENCE_TTL: '3' })
  const urlA = await a.app.listen({ port: 0, host: '127.0.0.1' })
  const observer = await connectTcp(urlA, a.user.cookie, await ticketFor(a.app, a.user.cookie), { topic: 'room' })
  await observer.nextOf('subscribed')
  const log = presenceLog(observer)

  // A second instance as a process of its own, so that it can be killed.
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/server.ts'], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', PORT: '0', DATA_DIR: tempDir(t), DATABASE_URL: postgres.url, SESSION_SECRET: 'one-secret-shared-by-every-instance!', PRESENCE_TTL: '3' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { child.kill('SIGKILL') })
  let urlC = ''
  for await (const line of createInterface({ input: child.stdout })) {
    const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line)
    if (match?.[1] !== undefined) { urlC = match[1]; break }
  }
  // The observer's own user is on the doomed instance too, in the same topic: it stays present (on A).
  const alsoOnC = await connectTcp(urlC, a.user.cookie, await ticketFor(a.app, a.user.cookie), { topic: 'room' })
  await alsoOnC.nextOf('subscribed')
  // A user only on the doomed instance.
  const response = await fetch(`${urlC}/api/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: `doomed${process.pid}`, password: 'correct horse' }) })
  const cookie = sessionCookie(response)
  const { wsTicket } = await (await fetch(`${urlC}/api/me`, { headers: { cookie } })).json() as { wsTicket: string }
  const doomed = await connectTcp(urlC, cookie, wsTicket, { topic: 'room' })
  await doomed.nextOf('subscribed')
  await log.next('joined', `doomed${process.pid}`)

  const exited = once(child, 'exit')
  child.kill('SIGKILL')
  await exited
  await log.next('left', `doomed${process.pid}`)
  t.pass('left, announced by the instance that saw the heartbeat stop')
  t.same((await a.app.inject({ url: '/api/topics/room/presence', headers: { cookie: a.user.cookie } })).json(), { present: [a.user.username] })
  t.notOk(log.frames.some((frame) => frame.type === 'left' && frame.user === a.user.username), 'a user still connected to a live instance is not left')
  observer.close()
})

t.test('a topic\'s present list, once read, answers from memory, and joined and left keep it current', async (t) => {
  // No grace: the left must come before the list read at first is due to be read again.
  const app = await buildTestApp(t, { PRESENCE_GRACE: '0' })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  const [alice, bob, ghost] = [await register(app), await register(app), await register(app)]
  const presentNow = async (): Promise<string[]> =>
    (await app.inject({ url: '/api/topics/room/presence', headers: { cookie: alice.cookie } })).json<{ present: string[] }>().present
  const observer = await connectTcp(url, alice.cookie, await ticketFor(app, alice.cookie), { topic: 'room' })
  t.same((await observer.nextOf('subscribed')).present, [alice.username])
  t.same(await presentNow(), [alice.username])
  // A row no instance announced: the list in memory does not see it.
  await app.db.query('INSERT INTO topic_presence (topic, user_id, user_name, instances) VALUES ($1, $2, $3, 1)', ['room', ghost.id, ghost.username])
  t.same(await presentNow(), [alice.username], 'read once, then from memory')
  const log = presenceLog(observer)
  const tab = await connectTcp(url, bob.cookie, await ticketFor(app, bob.cookie), { topic: 'room' })
  await tab.nextOf('subscribed')
  await log.next('joined', bob.username)
  t.same(await presentNow(), [alice.username, bob.username].sort(), 'joined adds to it')
  tab.close()
  await log.next('left', bob.username)
  t.same(await presentNow(), [alice.username], 'left takes from it')
  observer.close()
})
