import { createHash } from 'node:crypto'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
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
 * A PGlite data directory shared by the test processes, copied into a fresh DATA_DIR by
 * migratedDataDir and unmigratedDataDir: a copy takes a tenth of what initdb takes (most of
 * 9 s of CPU). Keyed by PGlite's version; `migrated`: every migration applied (keyed by the
 * migrations too), otherwise just made, by PGlite's initdb, with no table yet. One process builds it while the others wait
 * (a lock directory names its builder; a lock whose builder is gone is taken over).
 */
async function pgliteTemplate (migrated: boolean): Promise<string> {
  const hash = createHash('sha256').update(pgliteVersion)
  if (migrated) {
    for (const file of readdirSync(migrationsFolder, { recursive: true, encoding: 'utf8' }).sort()) {
      if (file.endsWith('.sql') || file.endsWith('.json')) hash.update(file).update(readFileSync(join(migrationsFolder, file)))
    }
  }
  const template = join(tmpdir(), `canopy-pglite-template-${migrated ? '' : 'unmigrated-'}${hash.digest('hex').slice(0, 16)}`)
  const lock = `${template}.lock`
  for (;;) {
    if (existsSync(template)) return template
    // The lock is made aside with its builder's pid inside, then renamed into place: nobody
    // sees a lock without its pid, and a rename onto a lock that is there fails.
    const pending = mkdtempSync(`${lock}-`)
    writeFileSync(join(pending, 'pid'), String(process.pid))
    try {
      renameSync(pending, lock)
      break
    } catch (error) {
      rmSync(pending, { recursive: true, force: true })
      if (!['ENOTEMPTY', 'EEXIST'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error
    }
    let builder: number | undefined
    try {
      builder = Number(readFileSync(join(lock, 'pid'), 'utf8'))
    } catch {
      continue // Gone meanwhile.
    }
    if (!running(builder)) {
      rmSync(lock, { recursive: true, force: true })
      continue
    }
    // Not a wait in a test: the builder takes seconds and tells no one when it is done.
    await new Promise((resolve) => { setTimeout(resolve, 100) })
  }
  try {
    if (existsSync(template)) return template
    const building = mkdtempSync(join(tmpdir(), 'canopy-pglite-building-'))
    const db = await openDatabase({ databaseUrl: undefined, dataDir: building })
    if (migrated) await db.migrate()
    await db.close()
    try {
      renameSync(building, template)
    } catch (error) {
      // Another builder, after a lock taken over from a builder that was not gone after all.
      rmSync(building, { recursive: true, force: true })
      if (!existsSync(template)) throw error
    }
    return template
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}

/** The version of PGlite installed (its package.json is not among its exports). */
const pgliteVersion = (JSON.parse(readFileSync(join(dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite')), '..', 'package.json'), 'utf8')) as { version: string }).version

/** Whether process `pid` of this host still runs. */
function running (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * A fresh DATA_DIR, removed when the test ends, holding an empty PGlite database with every
 * migration applied: what a data directory is after its first start. The app still runs its
 * migrations on it, finding none pending. Tests of a first start on an empty directory (initdb
 * and migrating from nothing) use tempDir instead.
 */
export async function migratedDataDir (t: TestContext, prefix?: string): Promise<string> {
  const dataDir = tempDir(t, prefix)
  cpSync(await pgliteTemplate(true), dataDir, { recursive: true })
  return dataDir
}

/**
 * A fresh DATA_DIR, removed when the test ends, holding a PGlite database as its initdb left
 * it: no table, no migration applied. For tests of migrating from nothing; the server's own
 * first start on an empty DATA_DIR (initdb included) is tested on tempDir.
 */
export async function unmigratedDataDir (t: TestContext): Promise<string> {
  const dataDir = tempDir(t)
  cpSync(await pgliteTemplate(false), dataDir, { recursive: true })
  return dataDir
}

/**
 * The very app factory the server uses, closed when the test ends. `settings` are set on the
 * configuration the environment gives, for those not read from it (publishQueueWaitMs, …).
 */
export async function buildTestApp (t: TestContext, env: Env = {}, settings: Partial<Config> = {}): Promise<FastifyInstance> {
  if (env.DATABASE_URL === undefined && env.DATA_DIR === undefined) env = { ...env, DATA_DIR: await migratedDataDir(t) }
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
