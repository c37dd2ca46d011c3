import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { dirname } from 'node:path'
import { noisyShare, type RunRecord } from './orchestrator.js'
import type { BenchPostgres } from './postgres.js'
import { columns, systemOf, type Column, type FigureSpec, type Instances, type Scenario, type SystemName } from './scenarios.js'
import { formatNumber, formatSummary, summarize, type Summary } from './stats.js'
import { rootDir } from './systems.js'

/**
 * Reporting the bench: the runs summed up per scenario and system (cells, with ratios of
 * Canopy to the limit and to the peer), the printed table with its header, and the JSON
 * written to bench/results/.
 */

export const columnTitles: Record<Column, string> = { limit: 'limit', peer: 'peer', canopy: 'Canopy' }
const systemTitles: Record<SystemName, string> = {
  limit: 'raw ws relay',
  socketio: 'Socket.IO, one instance',
  'socketio-pg': 'Socket.IO + Postgres adapter',
  canopy: 'Canopy'
}

export interface Cell {
  system: SystemName
  /** Why a run failed; then the cell is "failed", never a number. */
  failed?: string
  summaries: Record<string, Summary>
  runs: RunRecord[]
}

export interface ScenarioReport {
  id: string
  title: string
  instances: Instances
  params: Scenario['params']
  figures: Scenario['figures']
  systems: Partial<Record<Column, Cell>>
  ratios: Record<string, { canopyToLimit?: number, canopyToPeer?: number }>
}

export interface Machine {
  cores: number
  cpuModel: string
  memoryBytes: number
  node: string
  postgres: string
  postgresSource: string
  platform: string
}

export interface CanopyVersion {
  /** HEAD of the checkout, when it is one. */
  commit?: string
  /** Canopy's files that differ from HEAD: the figures are of those changes. */
  modified?: string[]
}

/** One target of the issues, checked against a run (bench/targets.ts). */
export interface TargetCheck {
  target: string
  value: string
  /** Undefined when the run did not measure the figure (a partial run, a failed system). */
  met: boolean | undefined
}

/** What a run writes to bench/results/ (latest.json for a full run). */
export interface BenchResults {
  date: string
  mode: 'quick' | 'full'
  repetitions: number
  durationSeconds: number
  machine: Machine
  canopy: CanopyVersion & { command: string }
  method: readonly string[]
  table: string
  targets: TargetCheck[]
  scenarios: ScenarioReport[]
}

export const methodNotes: readonly string[] = [
  'Median (min–max) of the repetitions; cores = CPU-seconds per second of the measured window, from /proc (the load generator: its own process.cpuUsage()). Ratios are Canopy\'s median over the other\'s (for ms and KiB lower is better).',
  'limit: a raw ws relay (no persistence, no auth), relaying each frame to the other clients of its URL topic; it answers each publish with a tiny {"type":"ack"} so the same windowed publisher drives it, and keeps the last 30 frames in memory for connect-and-history. It has no cross-instance path, so it sits out the two-instance scenarios.',
  'peer: Socket.IO 4 (join(topic), io.to(topic).emit with author and time, ack after emit); on two instances with @socket.io/postgres-adapter, which sends one NOTIFY per message and delivers even locally only after it, while the ack goes out at once: its acks run ahead of its deliveries ("deliveries owed at window end"). History for connect-and-history is kept in memory.',
  'Canopy: started as `npm start` does, real register/login, tickets and cookies; every message committed before its ack and delivery.',
  'Subscribers are minimal raw-TCP WebSocket clients (one per connection, same code for every system); publishers are real clients (ws, socket.io-client), one connection each with a window of unacked publishes (fan-out, publish-heavy) or open loop (latency).',
  'Deliveries per server CPU-s count the server processes, plus Postgres for Canopy and the Postgres-adapter peer.',
  'Idle memory: heap used (after GC, from inside the server) and VmRSS, with N connections open minus with none open, over N.',
  'scale-4i (Canopy only): four instances, each serving topics of its own. Commits, messages per commit and NOTIFYs (one per topic per commit) are read from the messages table after the run: the rows committed between the marks, grouped by xmin. Control window: only instance 1 publishes; instances 2–4 then hear only NOTIFYs for topics they do not serve, and their CPU per 1000 of them is the cost of one more instance\'s traffic. The share of each instance\'s CPU on others\' NOTIFYs while all four publish is that cost times the NOTIFYs it heard, over its CPU. See docs/scaling.md.'
]

function cellOf (scenario: Scenario, column: Column, runs: readonly RunRecord[]): Cell {
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

export function report (scenarios: readonly Scenario[], runs: readonly RunRecord[]): ScenarioReport[] {
  return scenarios.map((scenario) => {
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

/** The unit after a figure, where the label does not already say it. */
function unitSuffix (figure: FigureSpec, before: string, after: string): string {
  return figure.unit === 'per cpu-s' || figure.unit === 'count' ? '' : `${before}${figure.unit}${after}`
}

function pad (text: string, width: number): string {
  return text.length >= width ? text + ' ' : text + ' '.repeat(width - text.length)
}

export function formatTable (reports: readonly ScenarioReport[], header: string): string {
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

export function formatNoisy (runs: readonly RunRecord[]): string {
  const noisy = runs.filter((run) => run.noisy === true)
  const share = `${noisyShare * 100} % of the machine`
  return noisy.length === 0
    ? `No run was noisy (outside processes under ${share} during every window).`
    : `Noisy runs (outside processes over ${share}): ${noisy.map((run) => `${run.scenario}/${run.column}/rep ${run.repetition}`).join(', ')}`
}

export function formatMethod (): string {
  return methodNotes.map((note) => `- ${note}`).join('\n')
}

/** A progress line after each run: which run, and its figures or why it failed. */
export function formatProgress (position: number, total: number, scenario: Scenario, run: RunRecord): string {
  const label = `[${String(position).padStart(String(total).length)}/${total}] rep ${run.repetition} ${scenario.id.padEnd(16)} ${columnTitles[run.column].padEnd(6)}`
  return `${label} ${describeRun(scenario, run)} (${run.seconds.toFixed(1)} s)`
}

function describeRun (scenario: Scenario, run: RunRecord): string {
  if (!run.ok) return `FAILED: ${run.reason ?? ''}`
  const parts = scenario.figures
    .filter((figure) => run.figures[figure.key] !== undefined)
    .map((figure) => `${figure.label} ${formatNumber(run.figures[figure.key] as number)}${unitSuffix(figure, ' ', '')}`)
  if (run.outsideBusyShare !== undefined) parts.push(`outside ${(run.outsideBusyShare * 100).toFixed(0)}%${run.noisy === true ? ' NOISY' : ''}`)
  return parts.join(', ')
}

export function describeMachine (postgres: BenchPostgres): Machine {
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryBytes: totalmem(),
    node: process.version,
    postgres: postgres.version,
    postgresSource: postgres.description,
    platform: `${process.platform} ${process.arch}`
  }
}

/** Which Canopy was measured, read without touching the repository (no index refresh). */
export function readCanopyVersion (): CanopyVersion {
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

/** The first line of the output and of the table: what was measured, when, on what. */
export function formatHeader (mode: BenchResults['mode'], date: string, version: CanopyVersion, machine: Machine, repetitions: number): string {
  return `Canopy bench (${mode}) — ${date} — Canopy ${describeVersion(version)} — ${machine.cores} cores, ${(machine.memoryBytes / 2 ** 30).toFixed(1)} GiB, ` +
    `Node ${machine.node}, Postgres ${machine.postgres} (${machine.postgresSource}), ${repetitions} repetition${repetitions === 1 ? '' : 's'}`
}

export function writeResults (file: string, results: BenchResults): void {
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n')
}
