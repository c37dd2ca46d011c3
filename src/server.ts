import { existsSync } from 'node:fs'
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'
import { DatabaseUnreachableError } from './db/database.js'

/** SIGTERM / SIGINT: sockets closed, in-flight publishes finished, exit 0 within this. */
const shutdownGraceMs = 10_000

if (existsSync('.env')) process.loadEnvFile('.env')

async function main (): Promise<void> {
  let app
  try {
    app = await buildApp(loadConfig(process.env))
  } catch (error) {
    if (error instanceof ConfigError || error instanceof DatabaseUnreachableError) {
      console.error(`canopy: ${error.message}`)
      process.exit(1)
    }
    throw error
  }
  closeWithGrace({ delay: shutdownGraceMs }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
  })
  await app.listen({ port: app.config.port, host: app.config.host })
}

await main()
