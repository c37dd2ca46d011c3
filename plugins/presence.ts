import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { HttpError } from '../src/errors.js'
import { enter, exit, heartbeat, presentIn, removeInstances } from '../src/presence-store.js'
import { isValidTopic, PresentBody, TopicParams, topicPattern } from '../src/protocol.js'
import type { Subscriber } from '../src/topic-bus.js'
import type { User } from '../src/users.js'

declare module 'fastify' {
  interface FastifyInstance {
    presence: {
      /**
       * A connection of `user` is in `topic` now: `joined` for the others if it is the user's
       * first anywhere. Resolves once the database counts the user there (or could not be told).
       */
      join(topic: string, user: User, connection: Subscriber): Promise<void>
      /** A connection of `user` left `topic`: `left` for the others if it was the user's last anywhere. */
      leave(topic: string, user: User): void
      /**
       * The users in `topic` now, on any instance, each once, sorted by name: read from the
       * database, then answered from memory for a few seconds, kept current by joined and left.
       */
      presentIn(topic: string): Promise<string[]>
    }
  }
}

/**
 * How long a topic's present list, once read, answers from memory; joined and left keep it
 * current meanwhile. The bound covers an announcement lost while the LISTEN connection was down.
 */
const presentListMaxAgeMs = 5000

/** Per user and topic on this instance: its connections there, and whether the database counts it. */
interface LocalPresence {
  topic: string
  user: User
  connections: number
  entered: boolean
  /** The database work for this entry, one step after the other. */
  settled: Promise<void>
  /** The connection whose arrival made it enter: it is not told its own `joined`. */
  arriving: Subscriber | undefined
}

/**
 * Who is in each topic, across instances: each instance counts its own connections per user
 * and topic, and tells Postgres only when a user's first one arrives or last one goes
 * (src/presence-store.ts), which says whether that was the user's first or last anywhere:
 * then `joined` or `left` goes to every instance through the topic bus. Every instance
 * beats a heartbeat; one that stops (crash, kill -9, lost network) has its users removed by
 * whichever instance sees the heartbeat older than PRESENCE_TTL.
 */
export default fp(async function presencePlugin (fastify) {
  const { db, topicBus: bus } = fastify
  const instanceId = bus.transport?.instanceId ?? randomUUID().slice(0, 8)
  const ttlSeconds = fastify.config.presenceTtlSeconds
  // A beat every quarter of PRESENCE_TTL, and silent after three quarters (two beats missed):
  // checked at every beat, a stopped instance is seen within PRESENCE_TTL.
  const heartbeatMs = (ttlSeconds * 1000) / 4
  const silentAfterSeconds = (ttlSeconds * 3) / 4
  const local = new Map<string, LocalPresence>()
  let closing = false
  /** Each topic's present list as last read, sorted; never changed in place (callers keep it). */
  const presentLists = new Map<string, { names: string[], readAtMs: number }>()
  /** The read in flight per topic, shared until joined or left makes it out of date. */
  const presentReads = new Map<string, { names: Promise<string[]>, outdated: boolean }>()

  /** Every joined and left, from here or another instance, passes here. */
  const tell = (topic: string, user: string, joined: boolean, except?: Subscriber): void => {
    bus.broadcast(topic, { type: joined ? 'joined' : 'left', topic, user }, except)
    const read = presentReads.get(topic)
    if (read !== undefined) read.outdated = true
    const list = presentLists.get(topic)
    if (list === undefined || list.names.includes(user) === joined) return
    list.names = joined ? [...list.names, user].sort() : list.names.filter((name) => name !== user)
  }

  const readSorted = async (topic: string): Promise<string[]> => (await presentIn(db, topic)).sort()
  const readPresent = async (topic: string): Promise<string[]> => {
    if (!bus.ready) {
      // joined and left from other instances are not heard meanwhile: nothing kept is current.
      presentLists.clear()
      return await readSorted(topic)
    }
    const kept = presentLists.get(topic)
    if (kept !== undefined && Date.now() - kept.readAtMs < presentListMaxAgeMs) return kept.names
    let read = presentReads.get(topic)
    if (read === undefined || read.outdated) {
      const entry = { names: readSorted(topic), outdated: false }
      presentReads.set(topic, entry)
      read = entry
      const done = (): void => { if (presentReads.get(topic) === entry) presentReads.delete(topic) }
      entry.names.then((names) => {
        done()
        if (entry.outdated) presentLists.delete(topic)
        else presentLists.set(topic, { names, readAtMs: Date.now() })
      }, done)
    }
    return await read.names
  }
  const announce = (topic: string, user: string, joined: boolean, except?: Subscriber): void => {
    tell(topic, user, joined, except)
    bus.announce({ kind: 'presence', topic, user, joined })
  }

  /** Brings the database in line with this entry's connections; a failure is retried at the next heartbeat. */
  const settle = async (key: string, entry: LocalPresence): Promise<void> => {
    const wanted = entry.connections > 0 && !closing
    try {
      if (wanted && !entry.entered) {
        const first = await enter(db, instanceId, entry.topic, entry.user.id, entry.user.name)
        entry.entered = true
        if (first) announce(entry.topic, entry.user.name, true, entry.arriving)
      } else if (!wanted && entry.entered) {
        const last = await exit(db, instanceId, entry.topic, entry.user.id)
        entry.entered = false
        if (last) announce(entry.topic, entry.user.name, false)
      }
    } catch (error) {
      fastify.log.warn({ err: error, topic: entry.topic }, 'presence: the database could not be told; retrying at the next heartbeat')
      return
    } finally {
      entry.arriving = undefined
    }
    if (entry.connections === 0 && !entry.entered && local.get(key) === entry) local.delete(key)
  }
  const resettle = (key: string, entry: LocalPresence): void => {
    entry.settled = entry.settled.then(async () => { await settle(key, entry) })
  }

  const beat = async (): Promise<void> => {
    const now = Date.now()
    for (const [topic, list] of presentLists) if (now - list.readAtMs >= presentListMaxAgeMs) presentLists.delete(topic)
    try {
      if (await heartbeat(db, instanceId)) {
        // Taken for dead meanwhile: this instance's presence was removed, enter it again.
        for (const entry of local.values()) entry.entered = false
      }
      for (const { topic, user } of await removeInstances(db, { olderThanSeconds: silentAfterSeconds })) announce(topic, user, false)
    } catch (error) {
      fastify.log.warn({ err: error }, 'presence: heartbeat failed')
      return
    }
    for (const [key, entry] of local) if ((entry.connections > 0) !== entry.entered) resettle(key, entry)
  }

  await heartbeat(db, instanceId)
  const timer = setInterval(() => { void beat() }, heartbeatMs).unref()

  fastify.decorate('presence', {
    async join (topic: string, user: User, connection: Subscriber) {
      const key = `${topic}\n${user.id}`
      let entry = local.get(key)
      if (entry === undefined) local.set(key, entry = { topic, user, connections: 0, entered: false, settled: Promise.resolve(), arriving: undefined })
      entry.connections += 1
      if (entry.connections === 1) {
        entry.arriving = connection
        resettle(key, entry)
      }
      await entry.settled
    },
    leave (topic: string, user: User) {
      const key = `${topic}\n${user.id}`
      const entry = local.get(key)
      if (entry === undefined) return
      entry.connections -= 1
      if (entry.connections === 0) resettle(key, entry)
    },
    presentIn: readPresent
  })

  bus.onEvent((event) => {
    if (event.kind === 'presence') tell(event.topic, event.user, event.joined)
  })

  fastify.withTypeProvider<TypeBoxTypeProvider>().get('/api/topics/:topic/presence', {
    schema: { params: TopicParams, response: { 200: PresentBody } },
    preHandler: fastify.requireUser
  }, async (request) => {
    if (!isValidTopic(request.params.topic)) throw new HttpError(400, 'bad_topic', `A topic name matches ${String(topicPattern)}`)
    return { present: await fastify.presence.presentIn(request.params.topic) }
  })

  // Leaving: this instance's users leave now rather than after PRESENCE_TTL.
  fastify.addHook('onClose', async () => {
    clearInterval(timer)
    closing = true
    await Promise.all([...local.values()].map(async (entry) => { await entry.settled }))
    try {
      for (const { topic, user } of await removeInstances(db, { instanceId })) bus.announce({ kind: 'presence', topic, user, joined: false })
    } catch (error) {
      fastify.log.warn({ err: error }, 'presence: could not say goodbye; the others will see this instance stop within PRESENCE_TTL')
    }
  })
}, { name: 'presence', fastify: '5.x', dependencies: ['config', 'database', 'session', 'topic-bus'] })
