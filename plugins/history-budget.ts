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

/** Each a query: a user's history reads per second, however many connections they open. */
const historyReadsPerSecond = 20
/** Enough for a page that subscribes every topic of a connection at once. */
const historyReadBurst = 100

export default fp(async function historyBudget (fastify) {
  const reads = new TokenBuckets<number>(historyReadsPerSecond, historyReadBurst)
  fastify.decorate('historyReads', reads)
  fastify.addHook('onClose', async () => { reads.stop() })
}, { name: 'history-budget', fastify: '5.x' })
