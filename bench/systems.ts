import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { freePort } from '../scripts/embedded-postgres.js'
import { residentBytes } from './proc.js'
import type { Instances, SystemName } from './scenarios.js'

/** How each system's server processes are started, watched and stopped. */

export const rootDir = fileURLToPath(new URL('../', import.meta.url))
/** `node --import <this>` runs TypeScript: the bench's own servers, and Canopy from source. */
export const tsxLoader = import.meta.resolve('tsx')
const heapProbe = new URL('./heap-probe.mjs', import.meta.url).href

/** Canopy as `npm start` runs it (dist/, built by `npm run bench`), or from src/ through tsx. */
export type CanopyBuild = 'dist' | 'source'

export interface ServerOptions {
  system: SystemName
  instances: Instances
  /** The scenario's fresh database (Canopy, and Socket.IO with the Postgres adapter). */
  databaseUrl: string
  canopyBuild: CanopyBuild
  /** Preload heap-probe.mjs, so that memory can be read from inside. */
  memoryProbe: boolean
  /** Write a V8 CPU profile of each server process into this directory (node --cpu-prof). */
  cpuProfileDir?: string | undefined
}

export interface MemorySample {
  heapUsedBytes: number
  rssBytes: number
}

export interface RunningServer {
  pid: number
  port: number
  /** GC, then heap used (from inside the process) and VmRSS (from /proc). */
  sampleMemory(): Promise<MemorySample>
  stop(): Promise<void>
}

const startTimeoutMs = 30_000
const stopTimeoutMs = 12_000
/** Starts of one server, each on a port found free, before giving up. */
const maxStartAttempts = 5
/** A session secret shared by the instances of one Canopy, ≥ 32 characters. */
const sessionSecretBytes = 32

/** Every knob the bench sets on Canopy; the rest stays at its default, as `npm start` has it. */
function canopyEnv (port: number, databaseUrl: string, dataDir: string, sessionSecret: string): Record<string, string> {
  return {
    PORT: String(port),
    HOST: '127.0.0.1',
    DATABASE_URL: databaseUrl,
    DATA_DIR: dataDir,
    SESSION_SECRET: sessionSecret,
    LOG_LEVEL: 'warn',
    // Rate limiting out of the way: the burst is far above the leases that instances take of it.
    PUBLISH_RATE: '1000000',
    PUBLISH_BURST: '1000000000',
    MAX_CONNECTIONS_PER_USER: '100000',
    HISTORY_READ_RATE: '1000000',
    HISTORY_READ_BURST: '1000000',
    // One subscriber account brings every topic of a scenario into being (100 in publish-heavy).
    TOPIC_CREATE_RATE: '1000000',
    LOGIN_ATTEMPTS: '100000'
  }
}

export function canopyEntry (build: CanopyBuild): string {
  return join(rootDir, build === 'dist' ? 'dist/server/server.js' : 'server/server.ts')
}

/** How Canopy is started, as the results record it. */
export function canopyCommand (build: CanopyBuild): string {
  return build === 'dist' ? 'node dist/server/server.js' : 'node --import tsx server/server.ts'
}

function command (options: ServerOptions): { args: string[], cwd: string } {
  const probe = options.memoryProbe ? ['--expose-gc', '--import', heapProbe] : []
  if (options.cpuProfileDir !== undefined) probe.push('--cpu-prof', '--cpu-prof-dir', options.cpuProfileDir)
  if (options.system === 'canopy') {
    const entry = canopyEntry(options.canopyBuild)
    if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` first (npm run bench does)`)
    const loader = options.canopyBuild === 'source' ? ['--import', tsxLoader] : []
    return { args: [...loader, ...probe, entry], cwd: rootDir }
  }
  const script = options.system === 'limit' ? 'bench/servers/limit.ts' : 'bench/servers/socketio.ts'
  return { args: ['--import', tsxLoader, ...probe, join(rootDir, script)], cwd: rootDir }
}

/**
 * Starts a system's instances: the first alone (Canopy migrates the fresh database), then the
 * others together, each ready (GET /readyz → 200). In start order, the first first.
 */
export async function startServers (options: ServerOptions): Promise<RunningServer[]> {
  const servers: RunningServer[] = []
  const sessionSecret = randomBytes(sessionSecretBytes).toString('base64url')
  // A port found free may be taken before the server binds it (the connections of tests
  // running alongside take ports from the same range): then the server starts on another.
  const start = async (): Promise<RunningServer> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await startOnce(await freePort())
      } catch (error) {
        if (!(error instanceof PortTaken) || attempt === maxStartAttempts) throw error
      }
    }
  }
  const startOnce = async (port: number): Promise<RunningServer> => {
    // A directory of its own, also as the working directory: no .env of the checkout applies.
    const dataDir = mkdtempSync(join(tmpdir(), `canopy-bench-${options.system}-`))
    let env: Record<string, string> = { PORT: String(port), HOST: '127.0.0.1' }
    if (options.system === 'canopy') env = canopyEnv(port, options.databaseUrl, dataDir, sessionSecret)
    if (options.system === 'socketio-pg') env.DATABASE_URL = options.databaseUrl
    const { args, cwd } = command(options)
    const child = spawn(process.execPath, args, {
      cwd: options.system === 'canopy' ? dataDir : cwd,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dataDir, ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    const server = watch(child, port, dataDir)
    try {
      await waitReady(child, port, server.output)
    } catch (error) {
      await server.stop()
      throw /EADDRINUSE|is in use/.test(server.output(100)) ? new PortTaken(port) : error
    }
    servers.push(server)
    return server
  }
  try {
    const first = await start()
    const others = await Promise.allSettled(Array.from({ length: options.instances - 1 }, start))
    const failed = others.find((outcome) => outcome.status === 'rejected')
    if (failed !== undefined) throw failed.reason
    return [first, ...others.map((outcome) => (outcome as PromiseFulfilledResult<RunningServer>).value)]
  } catch (error) {
    await Promise.all(servers.map(async (server) => { await server.stop() }))
    throw error
  }
}

class PortTaken extends Error {
  constructor (port: number) { super(`port ${port} was taken before the server could listen on it`) }
}

function watch (child: ChildProcess, port: number, dataDir: string): RunningServer & { output(lines?: number): string } {
  let output = ''
  const memoryWaiters: Array<(sample: { heapUsed: number }) => void> = []
  const keep = (line: string): void => { output = (output + line + '\n').slice(-4000) }
  if (child.stdout !== null) createInterface({ input: child.stdout }).on('line', keep)
  if (child.stderr !== null) {
    createInterface({ input: child.stderr }).on('line', (line) => {
      if (line.startsWith('BENCH_MEMORY ')) memoryWaiters.shift()?.(JSON.parse(line.slice(13)) as { heapUsed: number })
      else keep(line)
    })
  }
  const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
  const pid = child.pid ?? 0
  return {
    pid,
    port,
    output: (lines = 5) => output.trim().split('\n').slice(-lines).join(' | '),
    async sampleMemory () {
      const reply = new Promise<{ heapUsed: number }>((resolve, reject) => {
        memoryWaiters.push(resolve)
        setTimeout(() => { reject(new Error('the heap probe did not answer')) }, 10_000).unref()
      })
      child.kill('SIGWINCH')
      const { heapUsed } = await reply
      return { heapUsedBytes: heapUsed, rssBytes: residentBytes(pid) ?? 0 }
    },
    async stop () {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => { child.kill('SIGKILL') }, stopTimeoutMs)
        await exited
        clearTimeout(timer)
      }
      rmSync(dataDir, { recursive: true, force: true })
    }
  }
}

async function waitReady (child: ChildProcess, port: number, output: () => string): Promise<void> {
  const deadline = Date.now() + startTimeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the server exited (${child.exitCode ?? child.signalCode ?? ''}) before it was ready: ${output()}`)
    }
    try {
      const response = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1000) })
      await response.arrayBuffer()
      if (response.status === 200) return
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`the server was not ready within ${startTimeoutMs / 1000} s: ${output()}`)
}
