import fp from 'fastify-plugin'
import type { FastifyReply } from 'fastify'
import { withTimeout } from '../src/timeout.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Registers a check that /readyz runs; a check that throws makes the instance not ready. */
    addReadinessCheck(name: string, check: () => Promise<void>): void
  }
}

const readinessTimeoutMs = 2000
/** A load balancer probes every few seconds: only what goes wrong is worth a line. */
const probeLogLevel = 'warn'

export default fp(async function health (fastify) {
  const checks = new Map<string, () => Promise<void>>()
  fastify.decorate('addReadinessCheck', (name: string, check: () => Promise<void>) => { checks.set(name, check) })
  fastify.addReadinessCheck('database', async () => { await fastify.db.query('SELECT 1') })

  fastify.get('/healthz', { logLevel: probeLogLevel }, async () => ({ status: 'ok' }))

  // A 503 names the parts that are not ready and nothing else: /readyz answers whoever can
  // reach the public address, so an address, a host name or a driver's message goes to the log.
  fastify.get('/readyz', { logLevel: probeLogLevel }, async (request, reply) => {
    if (fastify.shuttingDown) return await notReady(reply, ['shutting down'])
    const failures = new Map<string, string>()
    await Promise.all([...checks].map(async ([name, check]) => {
      try {
        await withTimeout(check(), readinessTimeoutMs, 'timed out')
      } catch (error) {
        failures.set(name, (error as Error).message)
      }
    }))
    if (failures.size === 0) return { status: 'ready' }
    request.log.warn({ failures: Object.fromEntries(failures) }, 'not ready')
    // In the order the checks were added, whichever finished first.
    return await notReady(reply, [...checks.keys()].filter((name) => failures.has(name)))
  })
}, { name: 'health', fastify: '5.x', dependencies: ['database', 'shutdown'] })

async function notReady (reply: FastifyReply, parts: string[]): Promise<FastifyReply> {
  return await reply.code(503).send({ error: 'not_ready', message: `Not ready: ${parts.join(', ')}` })
}
