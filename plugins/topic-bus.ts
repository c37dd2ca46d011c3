import fp from 'fastify-plugin'
import { TopicBus } from '../src/topic-bus.js'

declare module 'fastify' {
  interface FastifyInstance {
    topicBus: TopicBus
  }
}

/** The topic bus of this instance: publishes and subscriptions over the messages table. */
export default fp(async function topicBus (fastify) {
  const bus = new TopicBus(fastify.db, fastify.log)
  fastify.decorate('topicBus', bus)
  fastify.addHook('onClose', async () => { bus.close() })
}, { name: 'topic-bus', dependencies: ['database', 'health'] })
