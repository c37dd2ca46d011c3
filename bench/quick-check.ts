import type { BenchResults } from './report.js'
import { scenarios } from './scenarios.js'

/**
 * What a quick run must hold to count as working, whatever the machine's speed: every
 * scenario of `--quick`, every system of each, no failed run, and every figure present and
 * sane. No figure is compared with a speed: `npm run bench` measures, this only checks.
 * Returns the problems found, none when the run is sound.
 */
export function quickRunProblems (results: BenchResults): string[] {
  const problems: string[] = []
  if (results.mode !== 'quick') problems.push(`mode is ${results.mode}, not quick`)
  const { machine } = results
  if (!(machine.cores > 0 && machine.node.startsWith('v') && machine.postgres !== '')) problems.push('the machine is not described')

  const expected = scenarios(true)
  const ids = results.scenarios.map((s) => s.id)
  if (ids.join(',') !== expected.map((s) => s.id).join(',')) problems.push(`scenarios ${ids.join(',')}, not ${expected.map((s) => s.id).join(',')}`)
  for (const scenario of expected) {
    const reported = results.scenarios.find((s) => s.id === scenario.id)
    if (reported === undefined) continue
    for (const column of scenario.columns) {
      const cell = reported.systems[column]
      if (cell === undefined) { problems.push(`${scenario.id} ${column}: no result`); continue }
      if (cell.failed !== undefined) { problems.push(`${scenario.id} ${column} failed: ${cell.failed}`); continue }
      for (const { key } of scenario.figures) {
        const value = cell.summaries[key]?.median
        // Postgres CPU and the delivery backlog may be 0; heap and RSS deltas of a small run are noise, but present.
        const sane = key === 'postgresCpu' || key === 'behindAtWindowEnd'
          ? value === undefined || value >= 0
          : key.endsWith('PerConnectionKiB') ? Number.isFinite(value) : value !== undefined && Number.isFinite(value) && value > 0
        if (!sane) problems.push(`${scenario.id} ${column} ${key} = ${String(value)}`)
      }
    }
  }
  if (/failed/.test(results.table)) problems.push('the table shows a failed cell')
  return problems
}
