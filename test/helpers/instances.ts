import type { FastifyInstance } from 'fastify'
import type { Config } from '../../src/config.js'
import { buildTestApp, register, type Env, type TestContext } from './app.js'
import { startPostgres, type TestPostgres } from './postgres.js'

/** Instances of one deployment share a session secret, so a session made on one is valid on all. */
const sharedSessionSecret = 'one-secret-shared-by-every-instance!'

export interface Instance {
  app: FastifyInstance
  /** A user registered, and so logged in, on this instance. */
  user: Awaited<ReturnType<typeof register>>
}

/** A tuple of `count` instances, so that a test can name each one without a cast. */
export type Instances<Count extends number, Built extends Instance[] = []> =
  Built['length'] extends Count ? Built : Instances<Count, [...Built, Instance]>

/**
 * Starts `count` instances on one fresh Postgres, in order, with one SESSION_SECRET, and
 * logs a user in on each. Rate limits are out of the way and messages may be long unless
 * `env` says otherwise; `settings` as buildTestApp's (e.g. unhurriedCommits).
 */
export async function startInstances<Count extends number> (t: TestContext, count: Count, env: Env = {}, settings: Partial<Config> = {}): Promise<{ postgres: TestPostgres, instances: Instances<Count> }> {
  const postgres = await startPostgres(t)
  const instances: Instance[] = []
  for (let i = 0; i < count; i++) {
    const app = await buildTestApp(t, {
      DATABASE_URL: postgres.url,
      SESSION_SECRET: sharedSessionSecret,
      PUBLISH_RATE: '10000',
      PUBLISH_BURST: '10000',
      MAX_MESSAGE_CHARS: '30000',
      ...env
    }, settings)
    instances.push({ app, user: await register(app) })
  }
  return { postgres, instances: instances as Instances<Count> }
}
