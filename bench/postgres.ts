import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { queryOnce, startEmbeddedPostgres } from '../scripts/embedded-postgres.js'
import pg from 'pg'
import { commandName, postgresCpuSeconds, readProcStat } from './proc.js'

/**
 * The one Postgres server every system of the bench uses: BENCH_DATABASE_URL when set,
 * otherwise a server of its own from embedded-postgres. Each scenario gets a fresh database.
 */
export interface BenchPostgres {
  /** "18.1", as the server says. */
  version: string
  /** Where the server is, for the report (no password). */
  description: string
  /** A fresh, empty database; its URL. */
  createDatabase(): Promise<string>
  dropDatabase(url: string): Promise<void>
  /**
   * CPU seconds of every process of the server so far; undefined when its processes are not
   * visible on this machine (a remote BENCH_DATABASE_URL).
   */
  cpuSeconds(): number | undefined
  stop(): Promise<void>
}

function withDatabase (url: string, name: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${name}`
  return parsed.href
}

export async function startPostgres (): Promise<BenchPostgres> {
  const external = process.env.BENCH_DATABASE_URL
  let adminUrl: string
  let postmasterPid: number | undefined
  let stop = async (): Promise<void> => {}
  let description: string

  if (external !== undefined && external !== '') {
    adminUrl = external
    const parsed = new URL(external)
    description = `BENCH_DATABASE_URL ${parsed.hostname}:${parsed.port === '' ? '5432' : parsed.port}`
    postmasterPid = await findLocalPostmaster(external)
  } else {
    const databaseDir = mkdtempSync(join(tmpdir(), 'canopy-bench-pg-'))
    const { server, adminUrl: url } = await startEmbeddedPostgres(databaseDir, { persistent: false })
    adminUrl = url
    description = 'embedded-postgres'
    postmasterPid = Number(readFileSync(join(databaseDir, 'postmaster.pid'), 'utf8').split('\n')[0])
    stop = async () => {
      await server.stop()
      rmSync(databaseDir, { recursive: true, force: true })
    }
  }

  const [row] = (await queryOnce<{ server_version: string }>(adminUrl, 'SHOW server_version')).rows
  const pid = postmasterPid
  return {
    version: row?.server_version ?? 'unknown',
    description,
    async createDatabase () {
      const name = `canopy_bench_${randomBytes(6).toString('hex')}`
      await queryOnce(adminUrl, `CREATE DATABASE ${name}`)
      return withDatabase(adminUrl, name)
    },
    async dropDatabase (url) {
      const name = new URL(url).pathname.slice(1)
      await queryOnce(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    },
    cpuSeconds: () => pid === undefined ? undefined : postgresCpuSeconds(pid),
    stop
  }
}

/**
 * The postmaster of a Postgres server given by URL, when it runs on this machine and its
 * processes are visible here: the parent of our own backend.
 */
async function findLocalPostmaster (url: string): Promise<number | undefined> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
    const backend = rows[0]?.pid
    if (backend === undefined || !/postgres/.test(commandName(backend) ?? '')) return undefined
    const parent = readProcStat(backend)?.ppid
    return parent !== undefined && /postgres/.test(commandName(parent) ?? '') ? parent : undefined
  } catch {
    return undefined
  } finally {
    await client.end()
  }
}
