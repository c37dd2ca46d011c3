import t, { type Test } from 'tap'
import { TokenBuckets } from '../../src/token-bucket.js'

/** Buckets on a clock the test moves. */
function bucketsAt (t: Test, ratePerSecond: number, burst: number): { buckets: TokenBuckets<string>, advance: (ms: number) => void } {
  let nowMs = 1_000_000
  const buckets = new TokenBuckets<string>(ratePerSecond, burst, () => nowMs)
  t.teardown(() => { buckets.stop() })
  return { buckets, advance: (ms) => { nowMs += ms } }
}

t.test('a key takes its burst at once, then is refused with the wait until its next token', async (t) => {
  const { buckets } = bucketsAt(t, 2, 3)
  t.same([buckets.take('ann'), buckets.take('ann'), buckets.take('ann')], [0, 0, 0], 'the burst')
  t.equal(buckets.take('ann'), 500, 'at 2 a second, the next token in 500 ms')
  t.equal(buckets.take('bob'), 0, 'another key has its own bucket')
})

t.test('each caller refused is told a later token than the one before', async (t) => {
  const { buckets } = bucketsAt(t, 2, 1)
  t.equal(buckets.take('ann'), 0)
  t.same([buckets.take('ann'), buckets.take('ann'), buckets.take('ann')], [500, 1000, 1500])
})

t.test('tokens come back at the rate, never past the burst', async (t) => {
  const { buckets, advance } = bucketsAt(t, 2, 2)
  buckets.take('ann')
  buckets.take('ann')
  t.equal(buckets.take('ann'), 500)
  advance(500)
  t.equal(buckets.take('ann'), 0, 'a token is back when it was said to be')
  advance(60_000)
  t.same([buckets.take('ann'), buckets.take('ann'), buckets.take('ann')], [0, 0, 500], 'a long wait gives back the burst, no more')
})

t.test('a refused take takes nothing', async (t) => {
  const { buckets, advance } = bucketsAt(t, 1, 1)
  buckets.take('ann')
  for (let i = 0; i < 5; i++) buckets.take('ann')
  advance(1000)
  t.equal(buckets.take('ann'), 0, 'the token due after a second is there, however many were refused meanwhile')
})

t.test('a deleted key starts again with a full bucket', async (t) => {
  const { buckets } = bucketsAt(t, 1, 1)
  buckets.take('ann')
  t.not(buckets.take('ann'), 0)
  buckets.delete('ann')
  t.equal(buckets.take('ann'), 0)
})
