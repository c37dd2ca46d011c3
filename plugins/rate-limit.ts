import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { AttemptLimiter, type AttemptLimit } from '../src/attempt-limiter.js'
import { repeatUntilClose } from '../src/periodic.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * A preHandler that counts the request against the limits `limitsOf` names, across all
     * instances, and answers 429 with Retry-After and `retryAfterMs` when one is exceeded
     * (after telling `onLimited`).
     */
    limitAttempts(options: AttemptLimitOptions): (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
}

export interface AttemptLimitOptions {
  limitsOf: (request: FastifyRequest) => AttemptLimit[]
  onLimited?: (request: FastifyRequest) => void
}

/** Expired counters are deleted this often by every instance: one indexed DELETE. */
const sweepIntervalMs = 60_000

/**
 * Attempt limits (login, registration) held in Postgres, so that every instance counts
 * against the same numbers. @fastify/rate-limit is not used: it runs one limit per route
 * and request, and a login counts against three (address and name, address, name) in one
 * statement.
 */
export default fp(async function rateLimit (fastify) {
  const limiter = new AttemptLimiter(fastify.db)

  fastify.decorate('limitAttempts', ({ limitsOf, onLimited }: AttemptLimitOptions) =>
    async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
      const retryAfterMs = await limiter.count(limitsOf(request))
      if (retryAfterMs === undefined) return
      onLimited?.(request)
      const retryAfterSeconds = Math.ceil(retryAfterMs / 1000)
      await reply.code(429).header('retry-after', retryAfterSeconds).send({
        error: 'too_many_requests',
        message: `Too many attempts; try again in ${retryAfterSeconds} s`,
        retryAfterMs
      })
    })

  repeatUntilClose(fastify, { everyMs: sweepIntervalMs, failure: 'deleting expired attempt counters failed' }, async () => {
    const count = await limiter.sweep()
    if (count > 0) fastify.log.debug({ count }, 'expired attempt counters deleted')
  })
}, { name: 'rate-limit', fastify: '5.x', dependencies: ['database'] })
