import fp from 'fastify-plugin'
import type { Subscriber } from '../src/topic-bus.js'

declare module 'fastify' {
  interface FastifyInstance {
    presence: {
      /** A connection of `user` is in `topic` now: `joined` for the others if it is the user's first. */
      join(topic: string, user: string, connection: Subscriber): void
      /** A connection of `user` left `topic`: `left` for the others if it was the user's last. */
      leave(topic: string, user: string, connection: Subscriber): void
    }
  }
}

/**
 * Who is in each topic: counted here per user over this instance's connections, announced
 * to the other instances through the topic bus, and told to subscribers as `joined` and
 * `left` frames.
 */
export default fp(async function presence (fastify) {
  const bus = fastify.topicBus
  /** Per topic, how many connections of each user are in it on this instance. */
  const counts = new Map<string, Map<string, number>>()

  const tell = (topic: string, user: string, joined: boolean, except?: Subscriber): void => {
    bus.broadcast(topic, { type: joined ? 'joined' : 'left', topic, user }, except)
  }

  fastify.decorate('presence', {
    join (topic: string, user: string, connection: Subscriber) {
      let users = counts.get(topic)
      if (users === undefined) counts.set(topic, users = new Map())
      const count = (users.get(user) ?? 0) + 1
      users.set(user, count)
      if (count > 1) return
      tell(topic, user, true, connection)
      bus.announce({ kind: 'presence', topic, user, joined: true })
    },
    leave (topic: string, user: string, connection: Subscriber) {
      const users = counts.get(topic)
      const count = (users?.get(user) ?? 1) - 1
      if (count > 0) { users?.set(user, count); return }
      users?.delete(user)
      if (users?.size === 0) counts.delete(topic)
      tell(topic, user, false, connection)
      bus.announce({ kind: 'presence', topic, user, joined: false })
    }
  })

  bus.onEvent((event) => {
    if (event.kind === 'presence') tell(event.topic, event.user, event.joined)
  })
}, { name: 'presence', fastify: '5.x', dependencies: ['topic-bus'] })
