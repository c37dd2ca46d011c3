import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import { busChannel } from '../src/bus-format.js'
import { TopicBus } from '../src/topic-bus.js'

declare module 'fastify' {
  interface FastifyInstance {
    topicBus: TopicBus
  }
}

/**
 * The topic bus of this instance. Where other instances share the database (a Postgres
 * server), it LISTENs on one dedicated connection and every publishing statement NOTIFYs,
 * so instances act as one; on the embedded PGlite there is one instance, and the bus stays
 * in-process.
 */
export default fp(async function topicBus (fastify) {
  const transport = fastify.db.shared
    ? { channel: busChannel, instanceId: randomUUID().slice(0, 8) }
    : undefined
  const bus = new TopicBus(fastify.db, fastify.log, {
    transport,
    busLag: (lagSeconds) => { fastify.metrics.busLag(lagSeconds) },
    keepRecent: fastify.config.historyLimit
  })
  await bus.listen()
  fastify.metrics.readFrom({ deliveries: () => bus.deliveries, listenUp: () => bus.ready ? 1 : 0 })
  fastify.decorate('topicBus', bus)
  fastify.addReadinessCheck('topic bus', async () => {
    if (!bus.ready) throw new Error('the LISTEN connection is reconnecting')
  })
  fastify.addHook('onClose', async () => { await bus.close() })
}, { name: 'topic-bus', fastify: '5.x', dependencies: ['config', 'database', 'health', 'metrics'] })
