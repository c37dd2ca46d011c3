import t from 'tap'
import { RefusalPolicy, type RefusalVerdict } from '../../src/refusal-policy.js'
import { TokenBuckets } from '../../src/token-bucket.js'

const inFlight = { publish: 32, other: 100 }

function policyAt (clock: { now: number }): RefusalPolicy<string> {
  return new RefusalPolicy<string>({ inFlight, toleranceMs: 10, now: () => clock.now })
}

t.test('refusals within one pause: up to twice the frames in flight are told, one more is not pausing', async (t) => {
  const clock = { now: 1000 }
  const policy = policyAt(clock)
  const verdicts: RefusalVerdict[] = []
  for (let i = 0; i < 65; i++) {
    verdicts.push(policy.refuse('a', 'publish', 500))
    clock.now += 1
  }
  t.same(verdicts.slice(0, 64), Array(64).fill('told'))
  t.equal(verdicts[64], 'not_pausing')
  t.equal(policy.refuse('b', 'publish', 500), 'told', 'each key has its own count')
})

t.test('a refusal after the pause starts a new one', async (t) => {
  const clock = { now: 0 }
  const policy = policyAt(clock)
  for (let i = 0; i < 64; i++) t.equal(policy.refuse('a', 'publish', 100), 'told')
  clock.now = 90
  t.equal(policy.refuse('a', 'publish', 100), 'told', 'within the tolerance of the hint, a new pause')
  for (let i = 0; i < 63; i++) policy.refuse('a', 'publish', 100)
  t.equal(policy.refuse('a', 'publish', 100), 'not_pausing', 'the new pause counts from zero')
})

t.test('a pause lasts the shortest hint given since it started', async (t) => {
  const clock = { now: 0 }
  const policy = policyAt(clock)
  policy.refuse('a', 'publish', 10_000)
  clock.now = 5
  policy.refuse('a', 'publish', 50)
  for (let i = 0; i < 62; i++) policy.refuse('a', 'publish', 10_000)
  clock.now = 55
  t.equal(policy.refuse('a', 'publish', 10_000), 'told', 'a client that paused for the short hint is past its pause')
})

t.test('publishes and other frames have their own bounds', async (t) => {
  const clock = { now: 0 }
  const policy = policyAt(clock)
  for (let i = 0; i < 200; i++) t.equal(policy.refuse('a', 'other', 1000), 'told')
  for (let i = 0; i < 64; i++) t.equal(policy.refuse('a', 'publish', 1000), 'told')
  t.equal(policy.refuse('a', 'other', 1000), 'not_pausing')
  t.equal(policy.refuse('a', 'publish', 1000), 'not_pausing')
  policy.forget('a')
  t.equal(policy.refuse('a', 'publish', 1000), 'told', 'a forgotten key starts afresh')
})

/** A seeded random number generator, so that every run simulates the same traffic. */
function seeded (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

interface Simulation {
  /** How the client answers a refusal. */
  client: 'pauses-for-the-first-hint' | 'waits-each-hint' | 'never-pauses'
  window: number
  publishes: number
  ratePerSecond: number
  burst: number
  /** The longest a frame takes to be served, or to cross the network, in the common case. */
  serviceMs: number
  seed: number
}

/**
 * A client and a server in simulated time: the client keeps `window` publishes in flight;
 * the server answers them one at a time, each taking a random while (now and then a long
 * one, as under load), with a token bucket's ack or refusal; both directions keep their
 * order and take a random while. Returns how many were acked and whether the policy closed
 * the client.
 */
function simulate (options: Simulation): { acked: number, closed: boolean } {
  const random = seeded(options.seed)
  let now = 0
  const limiter = new TokenBuckets<string>(options.ratePerSecond, options.burst, () => now)
  const policy = new RefusalPolicy<string>({ inFlight: { publish: options.window, other: 0 }, toleranceMs: 10, now: () => now })
  const events: Array<{ at: number, order: number, run: () => void }> = []
  let order = 0
  const at = (time: number, run: () => void): void => { events.push({ at: time, order: order++, run }) }
  let toServerAt = 0
  let toClientAt = 0
  let serverFreeAt = 0
  let acked = 0
  let closed = false

  // The client. A publish is in flight from its first send to its ack, waits to be sent
  // again included, as the page counts them (public/connection.js).
  let nextRef = 0
  const inFlight = new Set<number>()
  const toResend: number[] = []
  let pausing = false
  const sendOne = (ref: number): void => {
    inFlight.add(ref)
    toServerAt = Math.max(toServerAt, now + random() * options.serviceMs)
    at(toServerAt, () => { serve(ref) })
  }
  const fill = (): void => {
    if (closed) return
    for (let ref = toResend.shift(); ref !== undefined; ref = toResend.shift()) sendOne(ref)
    while (inFlight.size < options.window && nextRef < options.publishes) sendOne(nextRef++)
  }
  const read = (ref: number, retryAfterMs: number | undefined): void => {
    if (closed) return
    if (retryAfterMs === undefined) {
      inFlight.delete(ref)
      acked++
      if (!pausing) fill()
      return
    }
    if (options.client === 'waits-each-hint') {
      at(now + retryAfterMs, () => { if (!closed) sendOne(ref) })
      return
    }
    toResend.push(ref)
    if (options.client === 'never-pauses') {
      fill()
      return
    }
    if (pausing) return
    pausing = true
    at(now + retryAfterMs, () => { pausing = false; fill() })
  }

  // The server.
  const serve = (ref: number): void => {
    serverFreeAt = Math.max(serverFreeAt, now) + (random() < 0.05 ? 15 : 1) * random() * options.serviceMs
    at(serverFreeAt, () => {
      if (closed) return
      const waitMs = limiter.take('user')
      if (waitMs > 0 && policy.refuse('connection', 'publish', waitMs) === 'not_pausing') {
        closed = true
        return
      }
      toClientAt = Math.max(toClientAt, now + random() * options.serviceMs)
      at(toClientAt, () => { read(ref, waitMs > 0 ? waitMs : undefined) })
    })
  }

  fill()
  for (let event = events.shift(); event !== undefined; event = events.shift()) {
    now = Math.max(now, event.at)
    event.run()
    if (closed) break
    events.sort((a, b) => a.at - b.at || a.order - b.order)
  }
  limiter.stop()
  return { acked, closed }
}

t.test('simulated: a client that pauses for the first hint or waits each one is never closed, and gets every publish acked', async (t) => {
  for (const client of ['pauses-for-the-first-hint', 'waits-each-hint'] as const) {
    for (const window of [1, 20, 32]) {
      for (const [ratePerSecond, burst] of [[20, 60], [40, 5], [1000, 10]] as const) {
        for (const serviceMs of [0.05, 2]) {
          let failures = 0
          for (let seed = 1; seed <= 20; seed++) {
            const { acked, closed } = simulate({ client, window, publishes: 200, ratePerSecond, burst, serviceMs, seed })
            if (closed || acked !== 200) failures++
          }
          t.equal(failures, 0, `${client}, ${window} in flight, ${ratePerSecond}/s burst ${burst}, frames served in up to ${serviceMs} ms: 20 seeds, all acked, never closed`)
        }
      }
    }
  }
})

t.test('simulated: a client that never pauses is closed', async (t) => {
  for (const [ratePerSecond, burst] of [[20, 60], [40, 5]] as const) {
    const { closed } = simulate({ client: 'never-pauses', window: 32, publishes: 5000, ratePerSecond, burst, serviceMs: 0.05, seed: 7 })
    t.ok(closed, `${ratePerSecond}/s burst ${burst}: resending each refused publish at once, 32 in flight`)
  }
})
