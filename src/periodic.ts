import type { FastifyInstance } from 'fastify'

/**
 * Runs `task` every `everyMs` until the app closes (and once when it is ready, with
 * `atReady`). A failure is logged as a warning saying `failure`, never thrown: the next
 * round tries again.
 */
export function repeatUntilClose (fastify: FastifyInstance, options: { everyMs: number, failure: string, atReady?: boolean }, task: () => Promise<void>): void {
  const run = async (): Promise<void> => {
    try {
      await task()
    } catch (error) {
      fastify.log.warn({ err: error }, options.failure)
    }
  }
  const timer = setInterval(() => { void run() }, options.everyMs).unref()
  if (options.atReady === true) fastify.addHook('onReady', run)
  fastify.addHook('onClose', async () => { clearInterval(timer) })
}
