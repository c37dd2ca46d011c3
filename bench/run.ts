import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { planRuns, runOnce, type RunRecord } from './orchestrator.js'
import { startPostgres } from './postgres.js'
import { describeMachine, formatHeader, formatMethod, formatNoisy, formatProgress, formatTable, methodNotes, readCanopyVersion, report, writeResults } from './report.js'
import { scenarios } from './scenarios.js'
import { canopyCommand, rootDir, type CanopyBuild } from './systems.js'
import { formatTargets, targets } from './targets.js'

/**
 * `npm run bench`: Canopy against the raw `ws` limit and the Socket.IO peer, on one machine
 * and one Postgres (issue 10). It runs every scenario, system and repetition (orchestrator.ts),
 * then prints the table and the targets and writes them as JSON (report.ts, targets.ts).
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

const mode = options.quick === true ? 'quick' : 'full'
const repetitions = Number(options.reps ?? (mode === 'quick' ? 1 : 3))
const canopyBuild: CanopyBuild = options.canopy === 'source' ? 'source' : 'dist'
const cpuProfileDir = options['cpu-prof'] === undefined ? undefined : resolve(options['cpu-prof'])
const only = options.only?.split(',').map((id) => id.trim()).filter((id) => id !== '')
const systemsWanted = options.systems?.split(',').map((name) => name.trim())
const fullRun = mode === 'full' && only === undefined && systemsWanted === undefined && options.reps === undefined
const outFile = resolve(options.out ?? join(rootDir, fullRun ? 'bench/results/latest.json' : 'bench/results/partial.json.tmp'))
const selected = scenarios(mode === 'quick')
  .filter((s) => only === undefined || only.includes(s.id))
  .map((s) => systemsWanted === undefined ? s : { ...s, columns: s.columns.filter((column) => systemsWanted.includes(column)) })

function progress (text: string): void {
  process.stdout.write(text + '\n')
}

const began = performance.now()
const postgres = await startPostgres()
const machine = describeMachine(postgres)
const date = new Date().toISOString()
const canopyVersion = readCanopyVersion()
const header = formatHeader(mode, date, canopyVersion, machine, repetitions)
progress(header)
const plan = planRuns(selected, repetitions)
const runs: RunRecord[] = []
try {
  for (const [i, planned] of plan.entries()) {
    const run = await runOnce(planned, postgres, { canopyBuild, cpuProfileDir })
    runs.push(run)
    progress(formatProgress(i + 1, plan.length, planned.scenario, run))
  }
} finally {
  await postgres.stop()
}

const reports = report(selected, runs)
const checks = targets(reports)
const table = formatTable(reports, header)
const seconds = (performance.now() - began) / 1000
progress('\n' + table + '\n\n' + formatTargets(checks) + '\n\n' + formatNoisy(runs) + '\n\n' + formatMethod())
progress(`\nTotal ${seconds.toFixed(0)} s. Written to ${outFile}`)
writeResults(outFile, {
  date,
  mode,
  repetitions,
  durationSeconds: Math.round(seconds),
  machine,
  canopy: { command: canopyCommand(canopyBuild), ...canopyVersion },
  method: methodNotes,
  table,
  targets: checks,
  scenarios: reports
})
if (runs.some((run) => !run.ok)) process.exitCode = 1
