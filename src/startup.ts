import { existsSync } from 'node:fs'
import { ConfigError, loadConfig, type Config } from './config.js'
import { DatabaseUnreachableError } from './db/database.js'

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

/** Runs a command's start; a failure an operator can act on is one line and exit code 1. */
export async function startOrExplain<T> (start: () => Promise<T>): Promise<T | undefined> {
  try {
    return await start()
  } catch (error) {
    if (!(error instanceof ConfigError || error instanceof DatabaseUnreachableError)) throw error
    console.error(`canopy: ${error.message}`)
    process.exitCode = 1
    return undefined
  }
}
