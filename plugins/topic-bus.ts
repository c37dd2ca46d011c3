import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import { TopicBus } from '../src/topic-bus.js'

declare module 'fastify' {
  interface FastifyInstance {
    topicBus: TopicBus
  }
}

/** The one NOTIFY channel of every topic: no LISTEN per topic, no identifier truncation. */
export const busChannel = 'canopy_bus'

/**
 * The topic bus of this instance. On a Postgres server it LISTENs on one dedicated
 * connection and NOTIFYs in every publishing transaction, so instances act as one; on the
 * embedded PGlite there is one instance, and the bus stays in-process.
 */
export default fp(async function topicBus (fastify) {
  const transport = fastify.db.kind === 'postgres'
    ? { channel: busChannel, instanceId: randomUUID().slice(0, 8) }
    : undefined
  const bus = new TopicBus(fastify.db, fastify.log, transport)
  await bus.listen()
  fastify.decorate('topicBus', bus)
  fastify.addReadinessCheck('topic bus', async () => {
    if (!bus.ready) throw new Error('the LISTEN connection is reconnecting')
  })
  fastify.addHook('onClose', async () => { await bus.close() })
}, { name: 'topic-bus', dependencies: ['database', 'health'] })
