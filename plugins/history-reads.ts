import fp from 'fastify-plugin'
import { TokenBuckets } from '../src/token-bucket.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * History reads (subscribes over WebSocket, history pages over HTTP) per user on this
     * instance: `take(userId)` is 0 when the read may go ahead, else the wait in ms.
     */
    historyReads: Pick<TokenBuckets<number>, 'take'>
  }
}

/**
 * Each read is a query: HISTORY_READ_RATE per user per second, however many connections the
 * user opens, with a burst (HISTORY_READ_BURST, 100 by default) enough for a page that
 * subscribes every topic of a connection at once.
 */
export default fp(async function historyReads (fastify) {
  const reads = new TokenBuckets<number>(fastify.config.historyReadsPerSecond, fastify.config.historyReadsBurst)
  fastify.decorate('historyReads', reads)
  fastify.addHook('onClose', async () => { reads.stop() })
}, { name: 'history-reads', fastify: '5.x', dependencies: ['config'] })
