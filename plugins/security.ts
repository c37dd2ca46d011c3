import fp from 'fastify-plugin'
import helmet from '@fastify/helmet'
import { HttpError } from '../src/errors.js'
import { crossSiteRefusal } from '../src/origin-policy.js'

/**
 * Security headers (the Content-Security-Policy allows no inline script and no foreign
 * origin), and the Origin rule of src/origin-policy.ts for every state-changing request.
 */
export default fp(async function security (fastify) {
  const { allowedOrigins } = fastify.config
  // The first hook of all: a cross-site request is refused before its session is even read.
  fastify.addHook('onRequest', async (request) => {
    const refusal = crossSiteRefusal(request, allowedOrigins)
    if (refusal !== undefined) throw new HttpError(403, 'forbidden', refusal)
  })

  // A WebSocket upgrade is answered by its own 101, which carries none of the reply's headers:
  // helmet would build its middleware for every connect for nothing. An upgrade refused
  // (401, 403, 429) is a plain HTTP response like any other, and gets the headers then.
  fastify.addHook('onRoute', (route) => {
    if (route.websocket !== true && route.wsHandler === undefined) return
    route.helmet = false
    const onSend = route.onSend === undefined ? [] : Array.isArray(route.onSend) ? route.onSend : [route.onSend]
    route.onSend = [...onSend, async (_request, reply, payload) => {
      reply.helmet()
      return payload
    }]
  })
  await fastify.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        fontSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"]
      }
    },
    // HSTS only where the operator serves HTTPS, which production implies.
    hsts: fastify.config.production
  })
}, { name: 'security', fastify: '5.x', dependencies: ['config'] })
