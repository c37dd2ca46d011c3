import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { HttpError } from '../src/errors.js'

/** Rate limiting for the routes that opt in through their `config.rateLimit`. */
export default fp(async function rateLimiting (fastify) {
  await fastify.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) =>
      new HttpError(429, 'too_many_requests', `Too many attempts; try again in ${Math.ceil(context.ttl / 1000)} s`)
  })
}, { name: 'rate-limit' })
