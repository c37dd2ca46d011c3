import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { configFromEnvironment, startOrExplain } from './startup.js'

/** SIGTERM / SIGINT: sockets closed, in-flight publishes finished, exit 0 within this. */
const shutdownGraceMs = 10_000

const app = await startOrExplain(async () => await buildApp(configFromEnvironment()))
if (app !== undefined) {
  closeWithGrace({ delay: shutdownGraceMs }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
  })
  await app.listen({ port: app.config.port, host: app.config.host })
}
