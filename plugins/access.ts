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
    if (event.kind === 'members') decider.apply({ topic: event.topic, userId: event.userId, user: event.user, role: event.role, by: event.by })
  })
  fastify.decorate('access', decider)
  fastify.decorate('announceMembersChange', (change: MembersChange) => {
    decider.apply(change)
    topicBus.tellOtherInstances({ kind: 'members', ...change })
  })
}, { name: accessPlugin, fastify: '5.x', dependencies: ['database', 'topic-bus'] })
