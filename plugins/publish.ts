import fp from 'fastify-plugin'
import { PublishLimiter } from '../src/publish-limiter.js'
import type { ErrorCode, MessageFrame } from '../src/protocol.js'
import type { User } from '../src/users.js'

export type PublishOutcome =
  | { ok: true, message: MessageFrame, duplicate: boolean }
  | { ok: false, code: ErrorCode, message: string }

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The one publish path of WebSocket and HTTP alike, for a text already validated:
     * the user's rate limit, then store and deliver. Never throws.
     */
    publish(user: User, topic: string, text: string, ref: string | undefined, committed?: (message: MessageFrame) => void): Promise<PublishOutcome>
    /** Publishes not yet answered, so shutdown can wait for them. */
    publishesInFlight: ReadonlySet<Promise<PublishOutcome>>
  }
}

export default fp(async function publish (fastify) {
  const { publishRatePerSecond, publishBurst } = fastify.config
  const perUser = new PublishLimiter(fastify.db, publishRatePerSecond, publishBurst)
  const inFlight = new Set<Promise<PublishOutcome>>()
  fastify.addHook('onClose', async () => { perUser.stop() })

  const run = async (user: User, topic: string, text: string, ref: string | undefined, committed?: (message: MessageFrame) => void): Promise<PublishOutcome> => {
    // Refused before anything is stored.
    const allowed = await perUser.take(user.id)
    if (allowed === 'limited') {
      return { ok: false, code: 'rate_limited', message: `over ${publishRatePerSecond} messages per second; nothing was stored` }
    }
    if (allowed === 'unavailable') {
      return { ok: false, code: 'unavailable', message: 'the message could not be stored; resend it with the same ref' }
    }
    try {
      const stored = await fastify.topicBus.publish({ topic, authorId: user.id, author: user.name, text, ref },
        committed === undefined ? undefined : (stored) => { committed(stored.message) })
      return { ok: true, message: stored.message, duplicate: stored.duplicate }
    } catch (error) {
      fastify.log.warn({ err: error, topic }, 'publish failed')
      return { ok: false, code: 'unavailable', message: 'the message could not be stored; resend it with the same ref' }
    }
  }

  fastify.decorate('publishesInFlight', inFlight)
  fastify.decorate('publish', (user: User, topic: string, text: string, ref: string | undefined, committed?: (message: MessageFrame) => void) => {
    const outcome = run(user, topic, text, ref, committed)
    inFlight.add(outcome)
    void outcome.finally(() => inFlight.delete(outcome))
    return outcome
  })
}, { name: 'publish', dependencies: ['topic-bus'] })
