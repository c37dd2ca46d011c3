import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { BenchResults } from '../bench/report.js'
import { scenarios, servedTopics, servingInstance } from '../bench/scenarios.js'
import { isValidTopic } from '../src/protocol.js'
import { tempDir } from './helpers/app.js'

/**
 * `npm run bench -- --quick` must keep working: it runs every scenario small against all
 * three systems. This asserts only that it completes with sane figures, never a speed.
 * Canopy runs from source through tsx, so no build (dist/) is needed.
 */

const latest = join(import.meta.dirname, '..', 'bench', 'results', 'latest.json')

t.test('the quick bench runs every scenario on every system with sane figures', async (t) => {
  const out = join(tempDir(t), 'bench.json')
  const latestBefore = existsSync(latest) ? readFileSync(latest, 'utf8') : undefined
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--canopy', 'source', '--out', out], {
    cwd: join(import.meta.dirname, '..'),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 0, output.slice(-3000))

  const report = JSON.parse(readFileSync(out, 'utf8')) as BenchResults
  t.ok(report.machine.cores > 0 && report.machine.node.startsWith('v') && report.machine.postgres !== '', 'machine described')
  t.same(report.scenarios.map((s) => s.id),
    ['fanout-100', 'fanout-1000', 'fanout-100-2i', 'publish-heavy-2i', 'latency-1i', 'latency-2i', 'idle-memory', 'connect-history'])
  const problems: string[] = []
  for (const scenario of report.scenarios) {
    for (const [column, cell] of Object.entries(scenario.systems)) {
      if (cell === undefined) continue
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
  t.same(problems, [], 'every figure of every system is there and positive')
  t.equal(Object.keys(report.scenarios.find((s) => s.id === 'fanout-100')?.systems ?? {}).length, 3, 'limit, peer and Canopy')
  t.notMatch(report.table, /failed/)
  t.equal(existsSync(latest) ? readFileSync(latest, 'utf8') : undefined, latestBefore, 'bench/results/latest.json left alone')
})

t.test('scale-4i runs Canopy alone on four instances, in the full run only, each topic served by the instance its name tells', async (t) => {
  const scale = scenarios(false).find((s) => s.id === 'scale-4i')
  if (scale === undefined) return t.fail('scale-4i is not a scenario')
  t.equal(scale.instances, 4)
  t.same(scale.columns, ['canopy'], 'the limit and the peer sit out')
  // Four instances take longer to start than the quick run may grow by.
  t.notOk(scenarios(true).some((s) => s.id === 'scale-4i'), 'left out of --quick')
  const served = Array.from({ length: scale.instances }, (_, k) => servedTopics(scale.params, k, scale.instances))
  t.equal(new Set(served.flat()).size, scale.params.topics, 'every topic once')
  t.ok(served.every((topics, k) => topics.every((topic) => isValidTopic(topic) && servingInstance(topic) === k)), 'valid names that tell their instance')
})
