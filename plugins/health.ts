import fp from 'fastify-plugin'
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

  fastify.get('/readyz', { logLevel: probeLogLevel }, async (request, reply) => {
    const failures: Record<string, string> = {}
    await Promise.all([...checks].map(async ([name, check]) => {
      try {
        await withTimeout(check(), readinessTimeoutMs, 'timed out')
      } catch (error) {
        failures[name] = (error as Error).message
      }
    }))
    if (Object.keys(failures).length === 0) return { status: 'ready' }
    request.log.warn({ failures }, 'not ready')
    return await reply.code(503).send({ error: 'not_ready', message: Object.entries(failures).map(([name, why]) => `${name}: ${why}`).join('; ') })
  })
}, { name: 'health', fastify: '5.x', dependencies: ['database'] })
