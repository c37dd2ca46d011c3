import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { getTableName } from 'drizzle-orm'
import pg from 'pg'
import { messages, topics } from '../src/db/schema.js'
import type { LoadOutput, LoadPlan, LoadResult, Mark } from './load-protocol.js'
import type { BenchPostgres } from './postgres.js'
import { machineCpu, processCpuSeconds, type MachineCpu } from './proc.js'
import { servingInstance, systemOf, usesPostgres, type Column, type Scenario, type SystemName } from './scenarios.js'
import { rootDir, startServers, tsxLoader, type CanopyBuild, type MemorySample, type RunningServer } from './systems.js'

/**
 * Running the bench: each run (one scenario, one system, one repetition) on a fresh
 * database, with the system's server processes and a load generator (load.ts) in a process
 * of its own; CPU is sampled from /proc (the load generator reports its own) at the edges of
 * each measured window (scale has two: every instance publishing, then the control), and for
 * scale the messages table tells what each window committed.
 */

/** A run is flagged noisy when processes outside the bench kept this share of the machine busy. */
export const noisyShare = 0.1
const runTimeoutMs = 180_000

export interface RunSettings {
  canopyBuild: CanopyBuild
  /** Write a V8 CPU profile of every server and load generator process into this directory. */
  cpuProfileDir: string | undefined
}

export interface PlannedRun {
  scenario: Scenario
  column: Column
  repetition: number
}

/** What a run measured: the load generator's result, with the CPU and memory figures taken here. */
export interface RunRecord extends LoadResult {
  scenario: string
  column: Column
  system: SystemName
  repetition: number
  /** Share of the machine kept busy by processes outside the bench during the window. */
  outsideBusyShare?: number
  noisy?: boolean
  seconds: number
}

interface CpuSample {
  at: number
  servers: number[]
  load: number
  postgres: number | undefined
  self: number
  machine: MachineCpu
}

/** What the processes spent between two samples, in CPU-seconds, over `seconds` of wall time. */
interface WindowCpu {
  seconds: number
  servers: number[]
  postgres: number | undefined
  load: number
  /** Share of the machine kept busy by processes outside the bench. */
  outsideShare: number
}

/** Each topic's last id (Canopy's topics table) at a mark: what was committed up to then. */
type TopicIds = Map<string, number>

/** What is read at one edge of a measured window. */
interface Edge {
  cpu: CpuSample
  /** Scale only. */
  ids: TopicIds | undefined
}

/** Every scenario × system × repetition, interleaved: each repetition starts with another system. */
export function planRuns (scenarios: readonly Scenario[], repetitions: number): PlannedRun[] {
  const plan: PlannedRun[] = []
  for (let repetition = 1; repetition <= repetitions; repetition++) {
    for (const scenario of scenarios) {
      const order = scenario.columns.map((_, i) => scenario.columns[(i + repetition - 1) % scenario.columns.length] as Column)
      for (const column of order) plan.push({ scenario, column, repetition })
    }
  }
  return plan
}

export async function runOnce ({ scenario, column, repetition }: PlannedRun, postgres: BenchPostgres, settings: RunSettings): Promise<RunRecord> {
  const system = systemOf(column, scenario.instances)
  const started = performance.now()
  // Key order is the order of the fields in latest.json.
  const record: RunRecord = { scenario: scenario.id, column, system, repetition, ok: false, figures: {}, counts: {}, notes: [], seconds: 0 }
  let databaseUrl: string | undefined
  let servers: RunningServer[] = []
  let table: pg.Client | undefined
  try {
    databaseUrl = await postgres.createDatabase()
    servers = await startServers({
      system,
      instances: scenario.instances,
      databaseUrl,
      canopyBuild: settings.canopyBuild,
      memoryProbe: scenario.kind === 'idle-memory',
      cpuProfileDir: settings.cpuProfileDir
    })
    const plan: LoadPlan = { scenario, system, instances: servers.map((server) => ({ host: '127.0.0.1', port: server.port })) }
    // The edges of each window, in the order of the windows.
    const starts: Edge[] = []
    const ends: Edge[] = []
    const memory = new Map<Mark, MemorySample[]>()
    if (scenario.kind === 'scale') table = await openTable(databaseUrl)
    const result = await runLoad(plan, settings.cpuProfileDir, async (mark, loadCpuSeconds) => {
      if (mark === 'memory-baseline' || mark === 'memory-loaded') {
        memory.set(mark, await Promise.all(servers.map(async (server) => await server.sampleMemory())))
      } else if (mark === 'window-start') {
        // Whatever commits between the CPU samples is counted: the table is read first at the start, last at the end.
        const ids = table === undefined ? undefined : await lastIds(table)
        starts.push({ cpu: cpuSample(servers, loadCpuSeconds, postgres), ids })
      } else {
        const cpu = cpuSample(servers, loadCpuSeconds, postgres)
        ends.push({ cpu, ids: table === undefined ? undefined : await lastIds(table) })
      }
    })
    Object.assign(record, result)
    const windows = ends.map((end, i) => windowCpu((starts[i] as Edge).cpu, end.cpu))
    if (result.ok && windows[0] !== undefined) {
      addCpuFigures(record, system, windows[0])
      record.outsideBusyShare = Math.max(...windows.map((window) => window.outsideShare))
      record.noisy = record.outsideBusyShare > noisyShare
    }
    if (result.ok && table !== undefined) {
      const client = table
      const traffic = await Promise.all(ends.map(async (end, i) =>
        await busTraffic(client, starts[i]?.ids ?? new Map(), end.ids ?? new Map(), servers.length)))
      addScaleFigures(record, windows, traffic)
    }
    const before = memory.get('memory-baseline')
    const after = memory.get('memory-loaded')
    if (result.ok && before !== undefined && after !== undefined) addMemoryFigures(record, before, after)
  } catch (error) {
    record.ok = false
    record.reason = (error as Error).message
  } finally {
    await table?.end().catch(() => {})
    await Promise.all(servers.map(async (server) => { await server.stop() }))
    if (databaseUrl !== undefined) await postgres.dropDatabase(databaseUrl).catch(() => {})
  }
  record.seconds = (performance.now() - started) / 1000
  return record
}

function cpuSample (servers: readonly RunningServer[], loadCpuSeconds: number, postgres: BenchPostgres): CpuSample {
  const usage = process.cpuUsage()
  return {
    at: performance.now(),
    servers: servers.map((server) => processCpuSeconds(server.pid)),
    load: loadCpuSeconds,
    postgres: postgres.cpuSeconds(),
    self: (usage.user + usage.system) / 1e6,
    machine: machineCpu()
  }
}

function windowCpu (start: CpuSample, end: CpuSample): WindowCpu {
  const servers = end.servers.map((value, i) => value - (start.servers[i] ?? 0))
  const postgres = end.postgres !== undefined && start.postgres !== undefined ? end.postgres - start.postgres : undefined
  const load = end.load - start.load
  const self = end.self - start.self
  const machineBusySeconds = end.machine.busySeconds - start.machine.busySeconds
  const machineSeconds = end.machine.totalSeconds - start.machine.totalSeconds
  const outside = machineBusySeconds - servers.reduce((sum, value) => sum + value, 0) - (postgres ?? 0) - load - self
  return { seconds: (end.at - start.at) / 1000, servers, postgres, load, outsideShare: Math.max(0, outside) / Math.max(machineSeconds, 1e-9) }
}

/** The CPU figures of the (first) measured window. */
function addCpuFigures (record: RunRecord, system: SystemName, window: WindowCpu): void {
  const { seconds, postgres } = window
  const serverSeconds = window.servers.reduce((sum, value) => sum + value, 0)
  record.figures.serverCpu = serverSeconds / seconds
  if (postgres !== undefined) record.figures.postgresCpu = postgres / seconds
  record.figures.loadCpu = window.load / seconds
  const systemSeconds = serverSeconds + (usesPostgres(system) ? postgres ?? 0 : 0)
  const { windowDeliveries, connects } = record.counts
  if (windowDeliveries !== undefined) record.figures.deliveriesPerCpuSecond = windowDeliveries / systemSeconds
  if (connects !== undefined) record.figures.cpuMsPerConnect = systemSeconds * 1000 / connects
  if (postgres === undefined) record.notes.push('Postgres processes not visible here: its CPU is not counted')
}

// ---- scale: what the bus carried, from the messages table ----

async function openTable (databaseUrl: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  return client
}

async function lastIds (client: pg.Client): Promise<TopicIds> {
  const { rows } = await client.query<{ name: string, last_id: string }>(
    `SELECT ${topics.name.name} AS name, ${topics.lastId.name} AS last_id FROM ${getTableName(topics)}`)
  return new Map(rows.map((row) => [row.name, Number(row.last_id)]))
}

/** What a window committed: in all, and of each instance's topics. */
interface BusTraffic {
  commits: number
  /** NOTIFYs: Canopy sends one per topic per commit. */
  notifications: number
  messages: number
  byInstance: Array<{ notifications: number, messages: number }>
}

/**
 * The messages committed between two marks: those with ids between the topic's last ids at
 * the marks. Every row of one commit has the same xmin, its transaction, so the commits are
 * the distinct xmins and the NOTIFYs the distinct (xmin, topic) pairs.
 */
async function busTraffic (client: pg.Client, from: TopicIds, to: TopicIds, instances: number): Promise<BusTraffic> {
  const names = [...to.keys()]
  const { rows } = await client.query<{ topic: string, xact: string, n: number }>(
    `SELECT m.${messages.topic.name} AS topic, m.xmin::text AS xact, count(*)::int AS n
     FROM ${getTableName(messages)} m
     JOIN unnest($1::text[], $2::int8[], $3::int8[]) AS w(topic, after, upto)
       ON m.${messages.topic.name} = w.topic AND m.${messages.id.name} > w.after AND m.${messages.id.name} <= w.upto
     GROUP BY 1, 2`,
    [names, names.map((name) => from.get(name) ?? 0), names.map((name) => to.get(name) ?? 0)])
  const byInstance = Array.from({ length: instances }, () => ({ notifications: 0, messages: 0 }))
  for (const row of rows) {
    const mine = byInstance[servingInstance(row.topic) ?? -1]
    if (mine === undefined) continue
    mine.notifications++
    mine.messages += row.n
  }
  return {
    commits: new Set(rows.map((row) => row.xact)).size,
    notifications: rows.length,
    messages: rows.reduce((sum, row) => sum + row.n, 0),
    byInstance
  }
}

/**
 * Scale: the bus while every instance publishes (the first window), and the control (the
 * second), where only instance 1 publishes: each other instance's CPU then goes to NOTIFYs
 * for topics it does not serve (and to its idle timers, which are next to nothing). Their
 * cost per NOTIFY, times the NOTIFYs each instance heard from the others in the first
 * window, estimates the share of its CPU that went to topics it does not serve.
 */
function addScaleFigures (record: RunRecord, windows: readonly WindowCpu[], traffic: readonly BusTraffic[]): void {
  const [all, control] = windows
  const [busy, quiet] = traffic
  if (all === undefined || busy === undefined) return
  const figures = record.figures
  figures.commitsPerSecond = busy.commits / all.seconds
  figures.messagesPerCommit = busy.messages / busy.commits
  figures.notificationsPerSecond = busy.notifications / all.seconds
  all.servers.forEach((cpu, i) => { figures[`instance${i + 1}Cpu`] = cpu / all.seconds })
  Object.assign(record.counts, { commits: busy.commits, notifications: busy.notifications, committedMessages: busy.messages })
  if (control === undefined || quiet === undefined) return
  figures.controlNotificationsPerSecond = quiet.notifications / control.seconds
  if (control.postgres !== undefined) figures.controlPostgresCpu = control.postgres / control.seconds
  Object.assign(record.counts, { controlCommits: quiet.commits, controlNotifications: quiet.notifications, controlMessages: quiet.messages })
  // Instance 1 publishes; each other one hears what it did not commit itself.
  let cpu = 0
  let heardNotifications = 0
  let heardMessages = 0
  for (let i = 1; i < control.servers.length; i++) {
    const own = quiet.byInstance[i] ?? { notifications: 0, messages: 0 }
    const heard = quiet.notifications - own.notifications
    figures[`instance${i + 1}CpuMsPer1000Foreign`] = (control.servers[i] ?? 0) * 1000 / heard * 1000
    cpu += control.servers[i] ?? 0
    heardNotifications += heard
    heardMessages += quiet.messages - own.messages
  }
  figures.cpuMsPer1000ForeignMessages = cpu * 1000 / heardMessages * 1000
  const secondsPerNotification = cpu / heardNotifications
  const shares = all.servers.map((spent, i) => secondsPerNotification * (busy.notifications - (busy.byInstance[i]?.notifications ?? 0)) / spent)
  figures.foreignSharePercent = 100 * shares.reduce((sum, share) => sum + share, 0) / shares.length
}

/** Memory per idle connection: with the connections open minus with none open, over their number. */
function addMemoryFigures (record: RunRecord, before: readonly MemorySample[], after: readonly MemorySample[]): void {
  const connections = record.counts.connections ?? 0
  const perConnectionKiB = (pick: (sample: MemorySample) => number): number =>
    after.reduce((sum, sample, i) => sum + pick(sample) - pick(before[i] as MemorySample), 0) / connections / 1024
  record.figures.heapPerConnectionKiB = perConnectionKiB((sample) => sample.heapUsedBytes)
  record.figures.rssPerConnectionKiB = perConnectionKiB((sample) => sample.rssBytes)
  record.counts.heapBaselineBytes = before[0]?.heapUsedBytes ?? 0
  record.counts.rssBaselineBytes = before[0]?.rssBytes ?? 0
}

/** Runs the load generator for a plan; `onMark` takes the samples of each mark before it goes on. */
async function runLoad (plan: LoadPlan, cpuProfileDir: string | undefined, onMark: (mark: Mark, loadCpuSeconds: number) => Promise<void>): Promise<LoadResult> {
  const profile = cpuProfileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', cpuProfileDir]
  const child = spawn(process.execPath, [...profile, '--import', tsxLoader, join(rootDir, 'bench/load.ts'), JSON.stringify(plan)], {
    cwd: rootDir,
    stdio: ['pipe', 'pipe', 'pipe']
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-4000) })
  const exited = new Promise<number | null>((resolve) => { child.once('exit', (code) => { resolve(code) }) })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, runTimeoutMs)
  let result: LoadResult | undefined
  try {
    for await (const line of createInterface({ input: child.stdout })) {
      const output = JSON.parse(line) as LoadOutput
      if ('mark' in output) {
        await onMark(output.mark, output.cpuSeconds)
        child.stdin.write('\n')
      } else {
        result = output.result
      }
    }
    const code = await exited
    return result ?? { ok: false, reason: `the load generator exited with ${code ?? 'a signal'}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`, figures: {}, counts: {}, notes: [] }
  } finally {
    clearTimeout(timer)
    if (child.exitCode === null) child.kill('SIGKILL')
  }
}
