import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import type { LoadOutput, LoadPlan, LoadResult, Mark } from './load-protocol.js'
import type { BenchPostgres } from './postgres.js'
import { machineCpu, processCpuSeconds, type MachineCpu } from './proc.js'
import { systemOf, usesPostgres, type Column, type Scenario, type SystemName } from './scenarios.js'
import { rootDir, startServers, tsxLoader, type CanopyBuild, type MemorySample, type RunningServer } from './systems.js'

/**
 * Running the bench: each run (one scenario, one system, one repetition) on a fresh
 * database, with the system's server processes and a load generator (load.ts) in a process
 * of its own; CPU is sampled from /proc at the edges of the measured window.
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
    const samples = new Map<Mark, CpuSample>()
    const memory = new Map<Mark, MemorySample[]>()
    const result = await runLoad(plan, settings.cpuProfileDir, async (mark, loadPid) => {
      if (mark === 'memory-baseline' || mark === 'memory-loaded') {
        memory.set(mark, await Promise.all(servers.map(async (server) => await server.sampleMemory())))
      } else {
        samples.set(mark, cpuSample(servers, loadPid, postgres))
      }
    })
    Object.assign(record, result)
    const start = samples.get('window-start')
    const end = samples.get('window-end')
    if (result.ok && start !== undefined && end !== undefined) addCpuFigures(record, system, start, end)
    const before = memory.get('memory-baseline')
    const after = memory.get('memory-loaded')
    if (result.ok && before !== undefined && after !== undefined) addMemoryFigures(record, before, after)
  } catch (error) {
    record.ok = false
    record.reason = (error as Error).message
  } finally {
    await Promise.all(servers.map(async (server) => { await server.stop() }))
    if (databaseUrl !== undefined) await postgres.dropDatabase(databaseUrl).catch(() => {})
  }
  record.seconds = (performance.now() - started) / 1000
  return record
}

function cpuSample (servers: readonly RunningServer[], loadPid: number, postgres: BenchPostgres): CpuSample {
  const usage = process.cpuUsage()
  return {
    at: performance.now(),
    servers: servers.map((server) => processCpuSeconds(server.pid)),
    load: processCpuSeconds(loadPid),
    postgres: postgres.cpuSeconds(),
    self: (usage.user + usage.system) / 1e6,
    machine: machineCpu()
  }
}

function addCpuFigures (record: RunRecord, system: SystemName, start: CpuSample, end: CpuSample): void {
  const seconds = (end.at - start.at) / 1000
  const serverSeconds = end.servers.reduce((sum, value, i) => sum + value - (start.servers[i] ?? 0), 0)
  const postgresSeconds = end.postgres !== undefined && start.postgres !== undefined ? end.postgres - start.postgres : undefined
  const loadSeconds = end.load - start.load
  const selfSeconds = end.self - start.self
  const machineBusySeconds = end.machine.busySeconds - start.machine.busySeconds
  const machineSeconds = end.machine.totalSeconds - start.machine.totalSeconds
  record.figures.serverCpu = serverSeconds / seconds
  if (postgresSeconds !== undefined) record.figures.postgresCpu = postgresSeconds / seconds
  record.figures.loadCpu = loadSeconds / seconds
  const systemSeconds = serverSeconds + (usesPostgres(system) ? postgresSeconds ?? 0 : 0)
  const { windowDeliveries, connects } = record.counts
  if (windowDeliveries !== undefined) record.figures.deliveriesPerCpuSecond = windowDeliveries / systemSeconds
  if (connects !== undefined) record.figures.cpuMsPerConnect = systemSeconds * 1000 / connects
  const outside = machineBusySeconds - serverSeconds - (postgresSeconds ?? 0) - loadSeconds - selfSeconds
  record.outsideBusyShare = Math.max(0, outside) / Math.max(machineSeconds, 1e-9)
  record.noisy = record.outsideBusyShare > noisyShare
  if (postgresSeconds === undefined) record.notes.push('Postgres processes not visible here: its CPU is not counted')
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
async function runLoad (plan: LoadPlan, cpuProfileDir: string | undefined, onMark: (mark: Mark, loadPid: number) => Promise<void>): Promise<LoadResult> {
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
        await onMark(output.mark, child.pid ?? 0)
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
