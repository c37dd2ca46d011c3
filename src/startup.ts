import { existsSync } from 'node:fs'
import type { FastifyBaseLogger } from 'fastify'
import type closeWithGrace from 'close-with-grace'
import { ConfigError, loadConfig, type Config } from './config.js'
import { DatabaseUnreachableError } from './db/database.js'
import { MigrationsAheadError } from './db/migrations.js'
import { StartupError } from './errors.js'

/**
 * What the commands (the server, db:migrate) share at start: the configuration from the
 * environment and a .env file, and start-up failures an operator can act on told in one
 * line, without a stack.
 */

/** The configuration, from the environment after a .env file in the working directory. */
export function configFromEnvironment (): Config {
  if (existsSync('.env')) process.loadEnvFile('.env')
  return loadConfig(process.env)
}

const explained = [ConfigError, DatabaseUnreachableError, MigrationsAheadError, StartupError]

/** Runs a command's start; a failure an operator can act on is one line and exit code 1. */
export async function startOrExplain<T> (start: () => Promise<T>): Promise<T | undefined> {
  try {
    return await start()
  } catch (error) {
    if (!explained.some((kind) => error instanceof kind)) throw error
    console.error(`canopy: ${(error as Error).message}`)
    process.exitCode = 1
    return undefined
  }
}

/**
 * What close-with-grace says (a forced exit, a second signal, a failed close), as lines of
 * the JSON log rather than its plain-text default on stderr.
 */
export function shutdownLogging (log: FastifyBaseLogger): Pick<closeWithGrace.Options, 'logger' | 'onTimeout' | 'onSecondSignal'> {
  return {
    logger: { error: (message: unknown) => { log.error(message) } },
    onTimeout: (graceMs) => { log.error({ graceMs }, 'shutdown did not finish in time: exiting with 1') },
    onSecondSignal: (signal) => { log.error({ signal }, 'second signal during the shutdown: exiting with 1') }
  }
}
