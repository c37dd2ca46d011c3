import t from 'tap'
import { quickRunProblems } from '../../bench/quick-check.js'
import type { BenchResults, Cell } from '../../bench/report.js'
import { scenarios, servedTopics, servingInstance, systemOf } from '../../bench/scenarios.js'
import { isValidTopic } from '../../src/protocol.js'

/**
 * What of the benchmark does not depend on the machine's speed. Running the quick bench is
 * CI's own step after `npm test` (`npm run bench:quick`, bench/quick.ts): it takes a minute
 * or more, longer on a loaded machine, and a user's `npm test` does not wait on it. Here:
 * the quick run's scenarios, and that its check (bench/quick-check.ts) tells a sound run
 * from a broken one.
 */

/** A quick run's results as a sound run writes them: every figure of every system, 1. */
function soundQuickRun (): BenchResults {
  return {
    date: new Date(0).toISOString(),
    mode: 'quick',
    repetitions: 1,
    durationSeconds: 60,
    machine: { cores: 2, cpuModel: 'test', memoryBytes: 1, node: 'v20.19.0', postgres: '18', postgresSource: 'embedded', platform: 'linux' },
    canopy: { command: 'tsx server/server.ts' },
    method: [],
    table: 'a table',
    targets: [],
    scenarios: scenarios(true).map((scenario) => ({
      id: scenario.id,
      title: scenario.title,
      instances: scenario.instances,
      params: scenario.params,
      figures: scenario.figures,
      ratios: {},
      systems: Object.fromEntries(scenario.columns.map((column): [string, Cell] => [column, {
        system: systemOf(column, scenario.instances),
        runs: [],
        summaries: Object.fromEntries(scenario.figures.map(({ key }) => [key, { median: 1, min: 1, max: 1, runs: 1 }]))
      }]))
    }))
  }
}

t.test('the quick run has every scenario but scale-4i, on every system it concerns', async (t) => {
  t.same(scenarios(true).map((s) => s.id),
    ['fanout-100', 'fanout-1000', 'fanout-100-2i', 'publish-heavy-2i', 'latency-1i', 'latency-2i', 'idle-memory', 'connect-history'])
  t.same(scenarios(true).find((s) => s.id === 'fanout-100')?.columns, ['limit', 'peer', 'canopy'], 'limit, peer and Canopy')
})

t.test('the quick check passes a sound run and names what is wrong with a broken one', async (t) => {
  t.same(quickRunProblems(soundQuickRun()), [], 'a sound run: no problem')

  const failed = soundQuickRun()
  const fanout = failed.scenarios[0]?.systems.canopy
  if (fanout === undefined) return t.fail('fanout-100 has a Canopy cell')
  fanout.failed = 'repetition 1: the server exited'
  t.same(quickRunProblems(failed), ['fanout-100 canopy failed: repetition 1: the server exited'])

  const missingFigure = soundQuickRun()
  const latency = missingFigure.scenarios.find((s) => s.id === 'latency-1i')
  const key = latency?.figures.find((f) => f.key !== 'postgresCpu' && f.key !== 'behindAtWindowEnd' && !f.key.endsWith('PerConnectionKiB'))?.key
  if (latency?.systems.peer === undefined || key === undefined) return t.fail('latency-1i has a peer cell and a positive figure')
  delete latency.systems.peer.summaries[key]
  latency.systems.limit = undefined
  t.same(quickRunProblems(missingFigure), ['latency-1i limit: no result', `latency-1i peer ${key} = undefined`])

  const zero = soundQuickRun()
  const cell = zero.scenarios.find((s) => s.id === 'connect-history')?.systems.canopy
  const first = zero.scenarios.find((s) => s.id === 'connect-history')?.figures[0]?.key
  if (cell === undefined || first === undefined) return t.fail('connect-history has a Canopy cell')
  cell.summaries[first] = { median: 0, min: 0, max: 0, runs: 1 }
  t.same(quickRunProblems(zero), [`connect-history canopy ${first} = 0`], 'a figure that must be positive, 0')

  const short = soundQuickRun()
  short.scenarios.pop()
  short.mode = 'full'
  short.table = 'fanout-100 … failed'
  t.equal(quickRunProblems(short).length, 3, 'the wrong mode, a scenario missing and a failed cell in the table')
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
