import t from 'tap'
import { LogSampler } from '../../src/log-sampler.js'

t.test('one line per period, carrying how many events went unlogged', async (t) => {
  let now = 5000
  const sampler = new LogSampler({ everyMs: 1000, now: () => now })
  t.equal(sampler.take(), 0, 'the first event is logged')
  for (let i = 0; i < 500; i++) t.equal(sampler.take(), undefined)
  now += 999
  t.equal(sampler.take(), undefined, 'not before the period is over')
  now += 1
  t.equal(sampler.take(), 501, 'the next line counts what went unlogged')
  now += 60_000
  t.equal(sampler.take(), 0, 'after a quiet spell, logged at once')
})
