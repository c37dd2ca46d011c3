import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { StartupError } from '../src/errors.js'
import { configFromEnvironment, shutdownLogging, startOrExplain } from '../src/startup.js'
import { version } from '../src/version.js'

/** SIGTERM / SIGINT: sockets closed, in-flight publishes finished, exit 0 within this. */
const shutdownGraceMs = 10_000

const app = await startOrExplain(async () => await buildApp(configFromEnvironment()))
const listening = app !== undefined && await startOrExplain(async () => {
  const { port, host } = app.config
  try {
    await app.listen({ port, host })
    return true
  } catch (error) {
    await app.close()
    const code = (error as { code?: string }).code
    if (code === 'EADDRINUSE') throw new StartupError(`Port ${port} on ${host} is in use: stop what holds it, or set PORT`)
    if (code === 'EADDRNOTAVAIL') throw new StartupError(`HOST ${host} is not an address of this machine`)
    if (code === 'EACCES') throw new StartupError(`Not allowed to listen on port ${port}: choose a port above 1023, or set PORT`)
    throw error
  }
})
// Installed once serving: it also ends the process with 0 when the event loop empties.
if (app !== undefined && listening === true) {
  app.log.info({
    version,
    node: process.version,
    database: app.db.shared ? 'postgres' : 'embedded',
    // The id this instance goes by in presence and on the topic bus (Postgres only).
    instance: app.topicBus.transport?.instanceId
  }, 'canopy started')
  const { log } = app
  closeWithGrace({ delay: shutdownGraceMs, ...shutdownLogging(log) }, async ({ signal, err }) => {
    const startedAt = performance.now()
    if (err !== undefined) log.error({ err }, 'shutting down after an error')
    else log.info({ signal }, 'shutting down')
    await app.close()
    log.info({ durationMs: Math.round(performance.now() - startedAt) }, 'shutdown complete')
  })
}
