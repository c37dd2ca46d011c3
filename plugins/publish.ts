import fp from 'fastify-plugin'
import { Publisher } from '../src/publisher.js'
import { accessPlugin } from './access.js'
import type { TopicCreations } from '../src/topic-creations.js'

/** This plugin's name, for the `dependencies` of the plugins that use its decorators. */
export const publishPlugin = 'publish'

declare module 'fastify' {
  interface FastifyInstance {
    /** The one publish path of WebSocket and HTTP alike (src/publisher.ts). */
    publisher: Publisher
    /** `publisher.publish`: rate limit, store, deliver; resolves with how it ended, never throws. */
    publish: Publisher['publish']
    /** TOPIC_CREATE_RATE: whether a user may subscribe to a topic that may not exist yet (src/topic-creations.ts). */
    topicCreations: Pick<TopicCreations, 'admit'>
  }
}

/** Makes this instance's Publisher, whose commits go to its topic bus. */
export default fp(async function publish (fastify) {
  const { topicBus: bus, metrics, config } = fastify
  const { statementTimeoutMs } = config
  const publisher = new Publisher({
    db: fastify.db,
    log: fastify.log,
    notify: bus.transport,
    busReady: () => bus.ready,
    access: fastify.access,
    onCommitted: (message) => { bus.deliverCommitted(message) },
    onPublished: (result) => { metrics.published(result) },
    onStatement: (seconds, batchSize) => { metrics.committed(seconds, batchSize) },
    publishRatePerSecond: config.publishRatePerSecond,
    publishBurst: config.publishBurst,
    topicCreatesPerHour: config.topicCreatesPerHour,
    maxQueueWaitMs: config.publishQueueWaitMs,
    // The queue gives a statement a second beyond the server's own bound, as the pool does.
    maxStatementWaitMs: statementTimeoutMs === undefined ? undefined : statementTimeoutMs + 1000
  })
  fastify.addReadinessCheck('commits', async () => {
    if (publisher.stalled) throw new Error('commits stall: a publish statement is running too long or ran out of time')
  })
  fastify.addHook('onClose', async () => { publisher.stop() })
  fastify.decorate('publisher', publisher)
  fastify.decorate('publish', publisher.publish.bind(publisher))
  fastify.decorate('topicCreations', publisher.topicCreations)
}, { name: publishPlugin, fastify: '5.x', dependencies: ['config', 'database', 'health', 'metrics', 'topic-bus', accessPlugin] })
