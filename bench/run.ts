import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import type { LoadOutput, LoadPlan, LoadResult, Mark } from './load-protocol.js'
import { startPostgres, type BenchPostgres } from './postgres.js'
import { machineCpu, processCpuSeconds, type MachineCpu } from './proc.js'
import { columns, scenarios, systemOf, usesPostgres, type Column, type FigureSpec, type Scenario, type SystemName } from './scenarios.js'
import { formatNumber, formatSummary, summarize, type Summary } from './stats.js'
import { rootDir, startServers, tsxLoader, type CanopyBuild, type MemorySample, type RunningServer } from './systems.js'

/**
 * `npm run bench`: Canopy against the raw `ws` limit and the Socket.IO peer, on one machine
 * and one Postgres (issue 10). For every scenario and repetition it starts the system's
 * server processes and a separate load generator (load.ts), samples CPU from /proc at the
 * edges of the measured window, and in the end prints the table and writes it as JSON.
 *
 *   npm run bench [-- --quick] [--out FILE] [--reps N] [--only ID,…] [--systems NAME,…]
 *                 [--canopy dist|source] [--cpu-prof DIR]
 *
 * --only runs some scenarios (ids as in scenarios.ts), --systems some of limit,peer,canopy;
 * --canopy source runs Canopy from src/ through tsx (no build needed); --cpu-prof writes a V8
 * CPU profile of every server and load generator process. Only a full run writes
 * bench/results/latest.json by default; a quick or partial one writes a gitignored .tmp file.
 */

const { values: options } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    reps: { type: 'string' },
    only: { type: 'string' },
    canopy: { type: 'string', default: 'dist' },
    'cpu-prof': { type: 'string' },
    systems: { type: 'string' }
  }
})

const quick = options.quick === true
const repetitions = Number(options.reps ?? (quick ? 1 : 3))
const canopyBuild: CanopyBuild = options.canopy === 'source' ? 'source' : 'dist'
const cpuProfileDir = options['cpu-prof'] === undefined ? undefined : resolve(options['cpu-prof'])
const only = options.only?.split(',').map((id) => id.trim()).filter((id) => id !== '')
const systemsWanted = options.systems?.split(',').map((name) => name.trim())
const fullRun = !quick && only === undefined && systemsWanted === undefined && options.reps === undefined
const outFile = resolve(options.out ?? join(rootDir, fullRun ? 'bench/results/latest.json' : 'bench/results/partial.json.tmp'))
const selected = scenarios(quick)
  .filter((s) => only === undefined || only.includes(s.id))
  .map((s) => systemsWanted === undefined ? s : { ...s, columns: s.columns.filter((column) => systemsWanted.includes(column)) })
const cores = cpus().length
/** A run is flagged noisy when processes outside the bench kept this share of the machine busy. */
const noisyShare = 0.1
const runTimeoutMs = 180_000

// ---- one run: one scenario, one system, one repetition ----

interface CpuSample {
  at: number
  servers: number[]
  load: number
  postgres: number | undefined
  self: number
  machine: MachineCpu
}

interface RunRecord {
  scenario: string
  column: Column
  system: SystemName
  repetition: number
  ok: boolean
  reason?: string
  figures: Record<string, number>
  counts: Record<string, number>
  notes: string[]
  /** Share of the machine kept busy by processes outside the bench during the window. */
  outsideBusyShare?: number
  noisy?: boolean
  seconds: number
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

async function runOnce (scenario: Scenario, column: Column, repetition: number, postgres: BenchPostgres): Promise<RunRecord> {
  const system = systemOf(column, scenario.instances)
  const started = performance.now()
  const record: RunRecord = { scenario: scenario.id, column, system, repetition, ok: false, figures: {}, counts: {}, notes: [], seconds: 0 }
  let databaseUrl: string | undefined
  let servers: RunningServer[] = []
  try {
    databaseUrl = await postgres.createDatabase()
    servers = await startServers({ system, instances: scenario.instances, databaseUrl, canopyBuild, memoryProbe: scenario.kind === 'idle-memory', cpuProfileDir })
    const plan: LoadPlan = { scenario, system, instances: servers.map((server) => ({ host: '127.0.0.1', port: server.port })) }
    const samples = new Map<Mark, CpuSample>()
    const memory = new Map<Mark, MemorySample[]>()
    const result = await runLoad(plan, async (mark, loadPid) => {
      if (mark === 'memory-baseline' || mark === 'memory-loaded') {
        memory.set(mark, await Promise.all(servers.map(async (server) => await server.sampleMemory())))
      } else {
        samples.set(mark, cpuSample(servers, loadPid, postgres))
      }
    })
    Object.assign(record, { ok: result.ok, reason: result.reason, figures: { ...result.figures }, counts: result.counts, notes: result.notes })
    const start = samples.get('window-start')
    const end = samples.get('window-end')
    if (result.ok && start !== undefined && end !== undefined) addCpuFigures(record, system, start, end)
    const before = memory.get('memory-baseline')
    const after = memory.get('memory-loaded')
    if (result.ok && before !== undefined && after !== undefined) {
      const connections = result.counts.connections ?? 0
      const perConnectionKiB = (pick: (sample: MemorySample) => number): number =>
        after.reduce((sum, sample, i) => sum + pick(sample) - pick(before[i] as MemorySample), 0) / connections / 1024
      record.figures.heapPerConnectionKiB = perConnectionKiB((sample) => sample.heapUsedBytes)
      record.figures.rssPerConnectionKiB = perConnectionKiB((sample) => sample.rssBytes)
      record.counts.heapBaselineBytes = before[0]?.heapUsedBytes ?? 0
      record.counts.rssBaselineBytes = before[0]?.rssBytes ?? 0
    }
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

/** Runs the load generator for a plan; `onMark` takes the samples of each mark before it goes on. */
async function runLoad (plan: LoadPlan, onMark: (mark: Mark, loadPid: number) => Promise<void>): Promise<LoadResult> {
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

// ---- the report ----

const columnTitles: Record<Column, string> = { limit: 'limit', peer: 'peer', canopy: 'Canopy' }
const systemTitles: Record<SystemName, string> = {
  limit: 'raw ws relay',
  socketio: 'Socket.IO, one instance',
  'socketio-pg': 'Socket.IO + Postgres adapter',
  canopy: 'Canopy'
}

interface Cell {
  system: SystemName
  /** Why a run failed; then the cell is "failed", never a number. */
  failed?: string
  summaries: Record<string, Summary>
  runs: RunRecord[]
}

interface ScenarioReport {
  id: string
  title: string
  instances: 1 | 2
  params: Scenario['params']
  figures: Scenario['figures']
  systems: Partial<Record<Column, Cell>>
  ratios: Record<string, { canopyToLimit?: number, canopyToPeer?: number }>
}

function cellOf (scenario: Scenario, column: Column, runs: RunRecord[]): Cell {
  const mine = runs.filter((run) => run.scenario === scenario.id && run.column === column)
  const cell: Cell = { system: systemOf(column, scenario.instances), summaries: {}, runs: mine }
  const failedRun = mine.find((run) => !run.ok)
  if (failedRun !== undefined) {
    cell.failed = `repetition ${failedRun.repetition}: ${failedRun.reason ?? 'failed'}`
    return cell
  }
  for (const figure of scenario.figures) {
    const summary = summarize(mine.map((run) => run.figures[figure.key]).filter((value): value is number => value !== undefined && Number.isFinite(value)))
    if (summary !== undefined) cell.summaries[figure.key] = summary
  }
  return cell
}

function report (runs: RunRecord[]): ScenarioReport[] {
  return selected.map((scenario) => {
    const systems: Partial<Record<Column, Cell>> = {}
    for (const column of scenario.columns) systems[column] = cellOf(scenario, column, runs)
    const ratios: ScenarioReport['ratios'] = {}
    for (const figure of scenario.figures) {
      const canopy = systems.canopy?.summaries[figure.key]?.median
      const limit = systems.limit?.summaries[figure.key]?.median
      const peer = systems.peer?.summaries[figure.key]?.median
      ratios[figure.key] = {
        canopyToLimit: canopy !== undefined && limit !== undefined && limit !== 0 ? canopy / limit : undefined,
        canopyToPeer: canopy !== undefined && peer !== undefined && peer !== 0 ? canopy / peer : undefined
      }
    }
    return { id: scenario.id, title: scenario.title, instances: scenario.instances, params: scenario.params, figures: scenario.figures, systems, ratios }
  })
}

interface TargetCheck {
  target: string
  value: string
  met: boolean | undefined
}

function targets (reports: ScenarioReport[]): TargetCheck[] {
  const find = (id: string): ScenarioReport | undefined => reports.find((r) => r.id === id)
  const median = (id: string, column: Column, key: string): number | undefined => find(id)?.systems[column]?.summaries[key]?.median
  const ratio = (id: string, key: string, to: 'canopyToLimit' | 'canopyToPeer'): number | undefined => find(id)?.ratios[key]?.[to]
  const checks: TargetCheck[] = []
  const atLeast = (target: string, value: number | undefined, bound: number, show: (v: number) => string): void => {
    checks.push({ target, value: value === undefined ? 'n/a' : show(value), met: value === undefined ? undefined : value >= bound })
  }
  const atMost = (target: string, value: number | undefined, bound: number, show: (v: number) => string): void => {
    checks.push({ target, value: value === undefined ? 'n/a' : show(value), met: value === undefined ? undefined : value <= bound })
  }
  const times = (v: number): string => `${v.toFixed(2)}×`
  const ms = (v: number): string => `${v.toFixed(2)} ms`
  const kib = (v: number): string => `${v.toFixed(1)} KiB`
  atLeast('fan-out 1000: delivered/s ≥ 90 % of the limit', ratio('fanout-1000', 'deliveredPerSecond', 'canopyToLimit'), 0.9, times)
  atLeast('fan-out 1000: delivered/s ≥ Socket.IO', ratio('fanout-1000', 'deliveredPerSecond', 'canopyToPeer'), 1, times)
  atLeast('fan-out 100: delivered/s ≥ 70 % of the limit', ratio('fanout-100', 'deliveredPerSecond', 'canopyToLimit'), 0.7, times)
  atLeast('fan-out 100: delivered/s ≥ Socket.IO', ratio('fanout-100', 'deliveredPerSecond', 'canopyToPeer'), 1, times)
  atLeast('two instances: deliveries per server CPU-s ≥ 1.2× the adapter peer', ratio('fanout-100-2i', 'deliveriesPerCpuSecond', 'canopyToPeer'), 1.2, times)
  // The peer acks before its NOTIFY is even sent: its delivered/s tells what it really carried.
  const deliveredRatio = ratio('publish-heavy-2i', 'deliveredPerSecond', 'canopyToPeer')
  atLeast('publish-heavy: acked msgs/s ≥ 3× the adapter peer', ratio('publish-heavy-2i', 'publishedPerSecond', 'canopyToPeer'), 3,
    (v) => `${times(v)} (delivered/s: ${deliveredRatio === undefined ? 'n/a' : times(deliveredRatio)})`)
  atMost('latency p99 ≤ 5 ms, one instance', median('latency-1i', 'canopy', 'p99Ms'), 5, ms)
  atMost('latency p99 ≤ 6 ms, two instances', median('latency-2i', 'canopy', 'p99Ms'), 6, ms)
  atMost('≤ 4 KiB heap per idle connection', median('idle-memory', 'canopy', 'heapPerConnectionKiB'), 4, kib)
  atMost('≤ 12 KiB RSS per idle connection', median('idle-memory', 'canopy', 'rssPerConnectionKiB'), 12, kib)
  atMost('connect-and-history p99 ≤ 10 ms', median('connect-history', 'canopy', 'p99Ms'), 10, ms)
  return checks
}

/** The unit after a figure, where the label does not already say it. */
function unitSuffix (figure: FigureSpec, before: string, after: string): string {
  return figure.unit === 'per cpu-s' || figure.unit === 'count' ? '' : `${before}${figure.unit}${after}`
}

function pad (text: string, width: number): string {
  return text.length >= width ? text + ' ' : text + ' '.repeat(width - text.length)
}

function formatTable (reports: ScenarioReport[], header: string): string {
  const widths = [38, 24, 24, 24, 14, 12]
  const lines: string[] = [header, '']
  lines.push([pad('figure', widths[0] as number), ...columns.map((c, i) => pad(columnTitles[c], widths[i + 1] as number)), pad('Canopy/limit', widths[4] as number), 'Canopy/peer'].join(''))
  for (const r of reports) {
    const peer = r.systems.peer?.system
    lines.push('')
    lines.push(`${r.id}: ${r.title}${peer === undefined ? '' : ` — peer: ${systemTitles[peer]}`}`)
    const failures = columns.flatMap((column) => {
      const failed = r.systems[column]?.failed
      return failed === undefined ? [] : [`  ${columnTitles[column]} failed: ${failed}`]
    })
    for (const figure of r.figures) {
      const cells = columns.map((column, i) => {
        const cell = r.systems[column]
        const text = cell === undefined ? 'n/a' : cell.failed !== undefined ? 'failed' : cell.summaries[figure.key] === undefined ? '–' : formatSummary(cell.summaries[figure.key] as Summary)
        return pad(text, widths[i + 1] as number)
      })
      const ratio = r.ratios[figure.key]
      // Ratios only where a direction is better; CPU use and backlogs are context.
      const showRatio = (value: number | undefined): string => figure.better === 'none' ? '' : value === undefined ? 'n/a' : `${value.toFixed(2)}`
      lines.push(pad(`  ${figure.label}${unitSuffix(figure, ' (', ')')}`, widths[0] as number) + cells.join('') +
        pad(showRatio(ratio?.canopyToLimit), widths[4] as number) + showRatio(ratio?.canopyToPeer))
    }
    lines.push(...failures)
  }
  return lines.join('\n')
}

const methodNotes = [
  'Median (min–max) of the repetitions; cores = CPU-seconds per second of the measured window, from /proc. Ratios are Canopy\'s median over the other\'s (for ms and KiB lower is better).',
  'limit: a raw ws relay (no persistence, no auth), relaying each frame to the other clients of its URL topic; it answers each publish with a tiny {"type":"ack"} so the same windowed publisher drives it, and keeps the last 30 frames in memory for connect-and-history. It has no cross-instance path, so it sits out the two-instance scenarios.',
  'peer: Socket.IO 4 (join(topic), io.to(topic).emit with author and time, ack after emit); on two instances with @socket.io/postgres-adapter, which sends one NOTIFY per message and delivers even locally only after it, while the ack goes out at once: its acks run ahead of its deliveries ("deliveries owed at window end"). History for connect-and-history is kept in memory.',
  'Canopy: started as `npm start` does, real register/login, tickets and cookies; every message committed before its ack and delivery.',
  'Subscribers are minimal raw-TCP WebSocket clients (one per connection, same code for every system); publishers are real clients (ws, socket.io-client), one connection each with a window of unacked publishes (fan-out, publish-heavy) or open loop (latency).',
  'Deliveries per server CPU-s count the server processes, plus Postgres for Canopy and the Postgres-adapter peer.',
  'Idle memory: heap used (after GC, from inside the server) and VmRSS, with N connections open minus with none open, over N.'
]

// ---- main ----

interface CanopyVersion {
  /** HEAD of the checkout, when it is one. */
  commit?: string
  /** Canopy's files that differ from HEAD: the figures are of those changes. */
  modified?: string[]
}

/** Which Canopy was measured, read without touching the repository (no index refresh). */
function readCanopyVersion (): CanopyVersion {
  const git = (...args: string[]): string => execFileSync('git', ['--no-optional-locks', ...args], { cwd: rootDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  try {
    const modified = git('status', '--porcelain=v1', '--', 'src', 'plugins', 'migrations', 'package.json').split('\n').filter((line) => line !== '').map((line) => line.slice(3))
    return { commit: git('rev-parse', 'HEAD'), modified }
  } catch {
    return {}
  }
}

function describeVersion (version: CanopyVersion): string {
  if (version.commit === undefined) return 'from a tree without git'
  return version.commit.slice(0, 7) + (version.modified !== undefined && version.modified.length > 0 ? ` + ${version.modified.length} modified files` : '')
}

function progress (text: string): void {
  process.stdout.write(text + '\n')
}

function describeRun (scenario: Scenario, run: RunRecord): string {
  if (!run.ok) return `FAILED: ${run.reason ?? ''}`
  const parts = scenario.figures
    .filter((figure) => run.figures[figure.key] !== undefined)
    .map((figure) => `${figure.label} ${formatNumber(run.figures[figure.key] as number)}${unitSuffix(figure, ' ', '')}`)
  if (run.outsideBusyShare !== undefined) parts.push(`outside ${(run.outsideBusyShare * 100).toFixed(0)}%${run.noisy === true ? ' NOISY' : ''}`)
  return parts.join(', ')
}

async function main (): Promise<void> {
  const began = performance.now()
  const postgres = await startPostgres()
  const machine = {
    cores,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
    node: process.version,
    postgres: postgres.version,
    postgresSource: postgres.description,
    platform: `${process.platform} ${process.arch}`
  }
  const date = new Date().toISOString()
  const canopyVersion = readCanopyVersion()
  const header = `Canopy bench (${quick ? 'quick' : 'full'}) — ${date} — Canopy ${describeVersion(canopyVersion)} — ${cores} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, ` +
    `Node ${process.version}, Postgres ${postgres.version} (${postgres.description}), ${repetitions} repetition${repetitions === 1 ? '' : 's'}`
  progress(header)
  const plan: Array<{ scenario: Scenario, column: Column, repetition: number }> = []
  for (let repetition = 1; repetition <= repetitions; repetition++) {
    for (const scenario of selected) {
      // Interleaved: each repetition starts with another system.
      const order = scenario.columns.map((_, i) => scenario.columns[(i + repetition - 1) % scenario.columns.length] as Column)
      for (const column of order) plan.push({ scenario, column, repetition })
    }
  }
  const runs: RunRecord[] = []
  try {
    for (const [i, { scenario, column, repetition }] of plan.entries()) {
      const run = await runOnce(scenario, column, repetition, postgres)
      runs.push(run)
      const label = `[${String(i + 1).padStart(String(plan.length).length)}/${plan.length}] rep ${repetition} ${scenario.id.padEnd(16)} ${columnTitles[column].padEnd(6)}`
      progress(`${label} ${describeRun(scenario, run)} (${run.seconds.toFixed(1)} s)`)
    }
  } finally {
    await postgres.stop()
  }

  const reports = report(runs)
  const checks = targets(reports)
  const table = formatTable(reports, header)
  const targetLines = ['Targets (issue 10), from the medians of this run:',
    ...checks.map((check) => `  ${check.met === undefined ? 'n/a    ' : check.met ? 'met    ' : 'NOT MET'}  ${check.target}: ${check.value}`)]
  const noisy = runs.filter((run) => run.noisy === true)
  const noisyLines = noisy.length === 0
    ? ['No run was noisy (outside processes under 10 % of the machine during every window).']
    : [`Noisy runs (outside processes over ${noisyShare * 100} % of the machine): ${noisy.map((run) => `${run.scenario}/${run.column}/rep ${run.repetition}`).join(', ')}`]
  const seconds = (performance.now() - began) / 1000
  progress('\n' + table + '\n\n' + targetLines.join('\n') + '\n\n' + noisyLines.join('\n') + '\n\n' + methodNotes.map((note) => `- ${note}`).join('\n'))
  progress(`\nTotal ${seconds.toFixed(0)} s. Written to ${outFile}`)

  mkdirSync(dirname(outFile), { recursive: true })
  writeFileSync(outFile, JSON.stringify({
    date,
    mode: quick ? 'quick' : 'full',
    repetitions,
    durationSeconds: Math.round(seconds),
    machine,
    canopy: { command: canopyBuild === 'dist' ? 'node dist/src/server.js' : 'node --import tsx src/server.ts', ...canopyVersion },
    method: methodNotes,
    table,
    targets: checks,
    scenarios: reports
  }, null, 2) + '\n')
  if (runs.some((run) => !run.ok)) process.exitCode = 1
}

await main()
