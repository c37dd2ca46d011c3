import fp from 'fastify-plugin'
import { Access, type MembersChange } from '../src/access.js'

/** This plugin's name, for the `dependencies` of every plugin that reads or writes a topic. */
export const accessPlugin = 'access'

declare module 'fastify' {
  interface FastifyInstance {
    /** Who may do what in a topic (src/access.ts): every route and frame that reads or writes a topic asks it. */
    access: Access
    /**
     * A membership change committed here: applied here at once, and told to every other
     * instance, which applies it as it hears it.
     */
    announceMembersChange(change: MembersChange): void
  }
}

export default fp(async function access (fastify) {
  const { topicBus } = fastify
  const decider = new Access({ db: fastify.db })
  topicBus.onEvent((event) => {
    if (event.kind !== 'members') return
    const { topic, userId, user, role, by, previous } = event
    decider.apply(previous === undefined ? { topic, userId, user, role, by } : { topic, userId, user, role, by, previous })
  })
  // Defence in depth: nothing of a private topic is delivered to a subscriber who is not a
  // member, whatever let the subscription through; topics with subscribers here stay known.
  topicBus.filterDeliveries({
    visibility: (topic) => decider.knownVisibility(topic),
    mayReceive: (userId, topic) => decider.mayReceive(userId, topic),
    learn: async (topic) => {
      if (await decider.refresh(topic) !== undefined) return 'private'
      return decider.knownVisibility(topic) === 'public' ? 'public' : undefined
    },
    served: (topic) => { decider.pin(topic) },
    unserved: (topic) => { decider.unpin(topic) }
  })
  fastify.decorate('access', decider)
  fastify.decorate('announceMembersChange', (change: MembersChange) => {
    decider.apply(change)
    topicBus.tellOtherInstances({ kind: 'members', ...change })
  })
}, { name: accessPlugin, fastify: '5.x', dependencies: ['database', 'topic-bus'] })
