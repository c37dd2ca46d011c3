import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { presenceStoreOn, presentIn } from '../src/presence-store.js'
import { PresenceTracker, type PresenceAnnouncement } from '../src/presence-tracker.js'
import { PresentLists } from '../src/present-lists.js'
import { PresentBody, TopicParams } from '../src/protocol.js'
import type { Subscriber } from '../src/topic-bus.js'
import type { User } from '../src/users.js'
import { accessPlugin } from './access.js'

declare module 'fastify' {
  interface FastifyInstance {
    presence: {
      /**
       * A connection of `user` is in `topic` now: `joined` for the others if it is the user's
       * first anywhere (and not back within PRESENCE_GRACE). Resolves once the database counts
       * the user there (or could not be told).
       */
      join(topic: string, user: User, connection: Subscriber): Promise<void>
      /** A connection of `user` left `topic`: `left` for the others, after PRESENCE_GRACE, if it was the user's last anywhere. */
      leave(topic: string, user: User): void
      /**
       * The users in `topic` now, on any instance, each once, sorted by name: read from the
       * database, then answered from memory for a few seconds, kept current by joined and left.
       */
      presentIn(topic: string): Promise<string[]>
      /** Resolves when this instance's next heartbeat and sweep is over (for tests and tools). */
      swept(): Promise<void>
    }
  }
}

/**
 * Who is in each topic, across instances: the presence tracker (src/presence-tracker.ts)
 * counts this instance's connections and tells Postgres (src/presence-store.ts); its
 * joined and left go to the subscribers here and, through the topic bus, to every other
 * instance, whose joined and left come back the same way. The present lists
 * (src/present-lists.ts) answer `present` and GET /api/topics/:topic/presence.
 */
export default fp(async function presencePlugin (fastify) {
  const { db, topicBus: bus, config } = fastify
  const presentLists = new PresentLists({ read: async (topic) => await presentIn(db, topic), hearsEveryone: () => bus.ready })

  /** Every joined and left, from here or another instance, passes here. */
  const tell = ({ topic, user, joined, except }: PresenceAnnouncement): void => {
    bus.broadcast(topic, { type: joined ? 'joined' : 'left', topic, user }, except)
    presentLists.change(topic, user, joined)
  }
  const tracker = new PresenceTracker({
    store: presenceStoreOn(db),
    instanceId: bus.transport?.instanceId ?? randomUUID().slice(0, 8),
    ttlSeconds: config.presenceTtlSeconds,
    graceSeconds: config.presenceGraceSeconds,
    onAnnouncement: (announcement) => {
      tell(announcement)
      bus.tellOtherInstances({ kind: 'presence', topic: announcement.topic, user: announcement.user, joined: announcement.joined })
    },
    log: fastify.log
  })
  bus.onEvent((event) => {
    if (event.kind === 'presence') tell(event)
  })
  await tracker.start()
  fastify.addHook('onClose', async () => { await tracker.close() })

  fastify.decorate('presence', {
    join: async (topic: string, user: User, connection: Subscriber) => { await tracker.join(topic, user, connection) },
    leave: (topic: string, user: User) => { tracker.leave(topic, user) },
    presentIn: async (topic: string) => await presentLists.of(topic),
    swept: async () => { await tracker.swept() }
  })

  fastify.withTypeProvider<TypeBoxTypeProvider>().get('/api/topics/:topic/presence', {
    schema: { params: TopicParams, response: { 200: PresentBody } },
    preHandler: fastify.requireUser,
    // plugins/access.ts checks the name and that the user may read the topic.
    config: { topicAccess: 'read' }
  }, async (request) => {
    return { present: await presentLists.of(request.params.topic) }
  })
}, { name: 'presence', fastify: '5.x', dependencies: ['config', 'database', 'session', 'topic-bus', accessPlugin] })
