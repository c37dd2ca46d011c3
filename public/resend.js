/**
 * When the page sends a refused publish or subscribe again, as the protocol asks: after
 * `rate_limited`, once its `retryAfterMs` is over, never sooner (a client that does not wait
 * is closed); after `unavailable`, after a backoff. A publish goes again with its `ref`, which
 * the server stores only once, so a resend never doubles a message.
 */

/** After `unavailable`, a publish or subscribe is sent again after about this, doubling each time. */
const firstResendMs = 1000
const maxResendMs = 15_000
/** Added at random to a `retryAfterMs`, so that refused publishes do not all come back at once. */
const resendSpreadMs = 50
const retryableErrors = new Set(['rate_limited', 'unavailable'])

/** Whether a frame refused with `error` is sent again. @param {{ code: string }} error */
export const retryable = (error) => retryableErrors.has(error.code)

/** A ref unique to this message; crypto.randomUUID needs a secure context, getRandomValues does not. */
export function newRef () {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID()
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, '0')).join('')
}

/**
 * How long to wait before sending a refused frame again: at least the `retryAfterMs` the
 * server gave, or a backoff (doubling, with jitter) after `unavailable`. Counts the failure.
 * @param {{ code: string, retryAfterMs?: number }} error
 * @param {{ failures: number }} attempt
 */
export function resendDelayMs (error, attempt) {
  attempt.failures += 1
  if (error.code === 'rate_limited' && typeof error.retryAfterMs === 'number') {
    return error.retryAfterMs + Math.random() * resendSpreadMs
  }
  const ceilingMs = Math.min(maxResendMs, firstResendMs * 2 ** Math.max(0, attempt.failures - 1))
  return ceilingMs / 2 + Math.random() * ceilingMs / 2
}
