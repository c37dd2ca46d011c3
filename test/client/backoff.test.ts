import t from 'tap'
import { afterClose, backoffDelayMs, defaultBackoff, onWakeup, resendDelayMs, Retry } from '../../client/src/backoff.js'

/** Reconnection timing without a server: the backoff, the close codes, the wakeups. */

t.test('exponential backoff with full jitter: anywhere below a ceiling that doubles up to the maximum', async (t) => {
  const options = { firstDelayMs: 100, maxDelayMs: 1000 }
  const top = (failures: number): number => backoffDelayMs(failures, options, () => 0.999999)
  t.same([0, 1, 2, 3, 4, 10].map(top), [99, 199, 399, 799, 999, 999])
  t.equal(backoffDelayMs(5, options, () => 0), 0, 'full jitter: as low as nothing')
  t.equal(backoffDelayMs(1, options, () => 0.5), 100)
  t.same(defaultBackoff, { firstDelayMs: 500, maxDelayMs: 15_000 })
})

t.test('a refused frame waits its own retryAfterMs, or a backoff after unavailable', async (t) => {
  t.equal(resendDelayMs({ code: 'rate_limited', retryAfterMs: 750 }, 0), 750)
  t.equal(resendDelayMs({ code: 'rate_limited' }, 0), 1000, 'a hint missing: a second')
  for (const failures of [1, 2, 3, 9]) {
    const delayMs = resendDelayMs({ code: 'unavailable' }, failures)
    t.ok(delayMs >= 0 && delayMs < Math.min(15_000, 1000 * 2 ** (failures - 1)), `after ${failures}: ${delayMs} ms`)
  }
})

t.test('close codes: 4401 ends for good, 1013 comes back at once, the rest after a backoff', async (t) => {
  t.same(afterClose({ code: 4401, authKind: 'session' }), { reconnect: 'never', reason: 'logged out' })
  t.same(afterClose({ code: 4401, authKind: 'key' }), { reconnect: 'never', reason: 'unauthorized' })
  t.same(afterClose({ code: 4401, authKind: 'token' }), { reconnect: 'never', reason: 'unauthorized' })
  t.same(afterClose({ code: 1006, refusedStatus: 401, authKind: 'key' }), { reconnect: 'never', reason: 'unauthorized' })
  t.same(afterClose({ code: 1013, authKind: 'session' }), { reconnect: 'now' })
  for (const code of [1001, 1006, 1008, 1011, undefined]) t.same(afterClose({ code, authKind: 'session' }), { reconnect: 'backoff' }, `${code}`)
  t.same(afterClose({ code: 1006, refusedStatus: 403, authKind: 'session' }), { reconnect: 'backoff' }, 'a stale ticket: a new one next time')
  t.same(afterClose({ code: 1006, refusedStatus: 429, authKind: 'session' }), { reconnect: 'backoff' })
})

/** A window and a document as far as wakeups go. */
function browser (): { window: EventTarget, document: EventTarget & { visibilityState: string } } {
  return { window: new EventTarget(), document: Object.assign(new EventTarget(), { visibilityState: 'visible' }) }
}

t.test('the network back or the tab shown again: the waiting try happens now', async (t) => {
  const targets = browser()
  let connects = 0
  const retry = new Retry({ backoff: { firstDelayMs: 3_600_000, maxDelayMs: 3_600_000 }, random: () => 0.5, wakeups: targets, connect: () => { connects++ } })
  t.teardown(() => { retry.stop() })

  targets.window.dispatchEvent(new Event('online'))
  t.equal(connects, 0, 'nothing waits: nothing to do')

  t.equal(retry.schedule('backoff'), 1_800_000)
  targets.window.dispatchEvent(new Event('online'))
  t.equal(connects, 1, 'online: at once')

  retry.schedule('backoff')
  targets.document.visibilityState = 'hidden'
  targets.document.dispatchEvent(new Event('visibilitychange'))
  t.equal(connects, 1, 'hidden: the timer stays')
  targets.document.visibilityState = 'visible'
  targets.document.dispatchEvent(new Event('visibilitychange'))
  t.equal(connects, 2, 'shown: at once')

  retry.schedule('backoff')
  retry.stop()
  targets.window.dispatchEvent(new Event('online'))
  t.equal(connects, 2, 'stopped: no longer listening')
})

t.test('at once only after a socket that worked; failures in a row back off, a success starts afresh', async (t) => {
  const retry = new Retry({ backoff: { firstDelayMs: 1000, maxDelayMs: 8000 }, random: () => 0.999, wakeups: {}, connect: () => {} })
  t.teardown(() => { retry.stop() })
  t.equal(retry.schedule('now'), 0)
  t.equal(retry.schedule('now'), 1998, 'the last try failed too: backoff')
  t.equal(retry.schedule('backoff'), 3996)
  retry.succeeded()
  t.equal(retry.schedule('backoff'), 999)
  retry.cancel()
})

t.test('onWakeup listens to what there is and stops listening', async (t) => {
  const targets = browser()
  let wakes = 0
  const stop = onWakeup(targets, () => { wakes++ })
  targets.window.dispatchEvent(new Event('online'))
  targets.document.dispatchEvent(new Event('visibilitychange'))
  stop()
  targets.window.dispatchEvent(new Event('online'))
  t.equal(wakes, 2)
  onWakeup({}, () => { wakes++ })()
  t.pass('no window, no document (Node): nothing to listen to')
})
