import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { quickRunProblems } from './quick-check.js'
import type { BenchResults } from './report.js'
import { rootDir } from './systems.js'

/**
 * `npm run bench:quick`: CI's check that the benchmark still works (its own step, after
 * `npm test`, which does not wait on it). It runs `bench/run.ts --quick` with Canopy from
 * src/ (no build needed) and fails when the run fails, a scenario or system is missing, a
 * figure is absent or not sane (quick-check.ts), or bench/results/latest.json was touched.
 * It checks that the bench runs, never how fast: the figures of a quick run are not results.
 */

const latest = join(rootDir, 'bench', 'results', 'latest.json')
const latestBefore = existsSync(latest) ? readFileSync(latest, 'utf8') : undefined
const dir = mkdtempSync(join(tmpdir(), 'canopy-bench-quick-'))
const out = join(dir, 'bench.json')
try {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--canopy', 'source', '--out', out], { cwd: rootDir, stdio: 'inherit' })
  const [code, signal] = await once(child, 'exit') as [number | null, NodeJS.Signals | null]
  const problems = code === 0 ? [] : [`bench/run.ts --quick exited with ${code ?? signal ?? 'nothing'}`]
  if (existsSync(out)) problems.push(...quickRunProblems(JSON.parse(readFileSync(out, 'utf8')) as BenchResults))
  else problems.push(`no results written to ${out}`)
  if ((existsSync(latest) ? readFileSync(latest, 'utf8') : undefined) !== latestBefore) problems.push('the quick run changed bench/results/latest.json')
  if (problems.length > 0) {
    console.error(`\nbench:quick: ${problems.length} problem(s)\n${problems.map((p) => `- ${p}`).join('\n')}`)
    process.exitCode = 1
  } else {
    console.log('\nbench:quick: every scenario ran on every system, every figure present and sane')
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
