import { createHash } from 'node:crypto'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { getTableName, isTable } from 'drizzle-orm'
import { buildApp } from '../../server/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import { migrationsFolder } from '../../src/db/database.js'
import { openDatabase } from '../../src/db/open.js'
import * as schema from '../../src/db/schema.js'
import { sessionCookie } from './http.js'

export interface TestContext {
  teardown(fn: () => unknown): void
}

export type Env = Record<string, string | undefined>

/** A fresh directory removed when the test ends. */
export function tempDir (t: TestContext, prefix = 'canopy-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** The configuration a test app runs with: quiet, on its own data directory unless given one. */
export function testConfig (t: TestContext, env: Env = {}): Config {
  // No keep-alive unless a test asks: injectWS's in-memory client does not answer pings.
  // No presence grace unless a test asks: a test that awaits `left` would wait it out.
  const config = loadConfig({ LOG_LEVEL: 'silent', KEEPALIVE_INTERVAL: '0', PRESENCE_GRACE: '0', DATA_DIR: env.DATA_DIR ?? tempDir(t), ...env })
  // No limit on a plugin's start-up (Fastify's 10 s): on a starved CPU, opening and migrating
  // a database takes longer, and start-up time is not what a test tests (tap's timeout is).
  return { ...config, pluginTimeoutMs: 0 }
}

/**
 * A migrated, empty PGlite data directory shared by the test processes (keyed by the
 * migrations), copied into a fresh DATA_DIR: a copy takes a third of what initdb and the
 * migrations take. The app still runs its migrations on it, finding none pending.
 */
async function pgliteTemplate (): Promise<string> {
  const hash = createHash('sha256')
  for (const file of readdirSync(migrationsFolder, { recursive: true, encoding: 'utf8' }).sort()) {
    if (file.endsWith('.sql') || file.endsWith('.json')) hash.update(file).update(readFileSync(join(migrationsFolder, file)))
  }
  const template = join(tmpdir(), `canopy-pglite-template-${hash.digest('hex').slice(0, 16)}`)
  if (existsSync(template)) return template
  const building = mkdtempSync(join(tmpdir(), 'canopy-pglite-building-'))
  const db = await openDatabase({ databaseUrl: undefined, dataDir: building })
  await db.migrate()
  await db.close()
  try {
    renameSync(building, template)
  } catch {
    // Another test process made it first.
    rmSync(building, { recursive: true, force: true })
  }
  return template
}

/**
 * The very app factory the server uses, closed when the test ends. `settings` are set on the
 * configuration the environment gives, for those not read from it (publishQueueWaitMs, …).
 */
export async function buildTestApp (t: TestContext, env: Env = {}, settings: Partial<Config> = {}): Promise<FastifyInstance> {
  if (env.DATABASE_URL === undefined && env.DATA_DIR === undefined) {
    const dataDir = tempDir(t)
    cpSync(await pgliteTemplate(), dataDir, { recursive: true })
    env = { ...env, DATA_DIR: dataDir }
  }
  const app = await buildApp({ ...testConfig(t, env), ...settings })
  t.teardown(async () => { await app.close() })
  await app.ready()
  return app
}

/**
 * Settings for buildTestApp where the 5 s bound of a publish (1 s in the queue, 3 s for a
 * statement) is not what a test tests: a minute each, so a starved CPU (a loaded machine,
 * tests running side by side) slows the test down but does not turn acks into `unavailable`.
 */
export const unhurriedCommits: Partial<Config> = { publishQueueWaitMs: 60_000, statementTimeoutMs: 60_000 }

let userCounter = 0
/** A unique valid user name for this test process. */
export function uniqueName (prefix = 'user'): string {
  userCounter += 1
  return `${prefix}${process.pid}_${userCounter}`
}

/** Registers a user and returns the cookie of its logged-in session. */
export async function register (app: FastifyInstance, username = uniqueName(), password = 'correct horse'): Promise<{ cookie: string, username: string, id: number }> {
  const response = await app.inject({ method: 'POST', url: '/api/register', payload: { username, password } })
  if (response.statusCode !== 201) throw new Error(`register ${username}: ${response.statusCode} ${response.body}`)
  return { cookie: sessionCookie(response), username, id: response.json<{ user: { id: number } }>().user.id }
}

/** Every table src/db/schema.ts declares, sorted: what the migrations must build. */
export const schemaTables = Object.values(schema).filter((value) => isTable(value)).map((table) => getTableName(table)).sort()
