// @ts-check

/**
 * When to try again after a connection is lost: exponential backoff with full jitter (each
 * delay drawn at random below a ceiling that doubles), so that the clients of a restarted
 * server do not all come back at once; what each close code means; and an immediate try
 * when the browser comes back online or the tab is shown again, because a background tab's
 * timers are throttled and a laptop that wakes up should not wait out a long delay.
 */

/**
 * @typedef {object} BackoffOptions
 * @property {number} firstDelayMs the ceiling of the first delay (doubled after each failure)
 * @property {number} maxDelayMs the ceiling never goes above this
 */

/** @type {Readonly<BackoffOptions>} */
export const defaultBackoff = Object.freeze({ firstDelayMs: 500, maxDelayMs: 15_000 })

/**
 * The delay before the next try, after `failures` tries that failed in a row: anywhere from 0
 * up to the ceiling, which starts at `firstDelayMs` and doubles up to `maxDelayMs`.
 * @param {number} failures
 * @param {BackoffOptions} [options]
 * @param {() => number} [random] uniform in [0, 1)
 * @returns {number}
 */
export function backoffDelayMs (failures, options = defaultBackoff, random = Math.random) {
  const ceilingMs = Math.min(options.maxDelayMs, options.firstDelayMs * 2 ** Math.max(0, failures))
  return Math.floor(random() * ceilingMs)
}

/** After `unavailable`, a publish or subscribe goes again after a backoff of its own. */
const resendBackoff = { firstDelayMs: 1000, maxDelayMs: 15_000 }

/**
 * How long a refused publish or subscribe waits before it goes again: the `retryAfterMs` of a
 * `rate_limited` (the server staggers them, so that they do not all come back at once), or a
 * backoff after `unavailable` answers in a row.
 * @param {{ code: string, retryAfterMs?: number }} refusal
 * @param {number} failures `unavailable` answers in a row, this one included
 */
export function resendDelayMs (refusal, failures) {
  if (refusal.code === 'rate_limited') return refusal.retryAfterMs ?? resendBackoff.firstDelayMs
  return backoffDelayMs(failures - 1, resendBackoff)
}

/**
 * What the client does after a socket closed: reconnect after a backoff, at once, or never.
 * @typedef {{ reconnect: 'backoff' | 'now' | 'never', reason?: string }} AfterClose
 */

/**
 * The close codes of docs/protocol.md, as the client acts on them. `refusedStatus` is the
 * HTTP status of an upgrade the server refused (when the WebSocket implementation tells it).
 * @param {{ code?: number, refusedStatus?: number, authKind: 'session' | 'key' | 'token' }} close
 *   code: undefined when no socket could be opened (the server did not answer, say)
 * @returns {AfterClose}
 */
export function afterClose ({ code, refusedStatus, authKind }) {
  // 4401: the session ended, or the key was revoked, or the token expired without a new one.
  if (code === 4401) return { reconnect: 'never', reason: authKind === 'session' ? 'logged out' : 'unauthorized' }
  // A 401 before the upgrade: this session, key or token is not (or no longer) accepted.
  if (refusedStatus === 401) return { reconnect: 'never', reason: 'unauthorized' }
  // 1013: too slow to keep up. Nothing is wrong with the server: come back at once with `since`.
  if (code === 1013) return { reconnect: 'now' }
  // 1001 (server shutting down), 1006 (cut off), 1011, 1008 and the rest: after a backoff.
  return { reconnect: 'backoff' }
}

/**
 * @typedef {object} WakeupTargets where the client hears that now is a good time to try again
 * @property {{ addEventListener(type: string, listener: () => void): void, removeEventListener(type: string, listener: () => void): void }} [window]
 *   its `online` event: the network is back
 * @property {{ visibilityState?: string, addEventListener(type: string, listener: () => void): void, removeEventListener(type: string, listener: () => void): void }} [document]
 *   its `visibilitychange` event, to `visible`: the tab is shown again
 */

/** The browser's window and document, when there are any (none in Node). @returns {WakeupTargets} */
export function browserWakeups () {
  const scope = /** @type {any} */ (globalThis)
  return {
    window: typeof scope.addEventListener === 'function' ? scope : undefined,
    document: typeof scope.document?.addEventListener === 'function' ? scope.document : undefined
  }
}

/**
 * Calls `wake` when the network comes back or the tab is shown again.
 * @param {WakeupTargets} targets
 * @param {() => void} wake
 * @returns {() => void} stops listening
 */
export function onWakeup (targets, wake) {
  const { window, document } = targets
  const shown = () => { if (document?.visibilityState !== 'hidden') wake() }
  window?.addEventListener('online', wake)
  document?.addEventListener('visibilitychange', shown)
  return () => {
    window?.removeEventListener('online', wake)
    document?.removeEventListener('visibilitychange', shown)
  }
}

/**
 * The one timer that starts the next connection, with the count of failures it backs off by.
 */
export class Retry {
  /**
   * @param {{ backoff?: BackoffOptions, random?: () => number, wakeups?: WakeupTargets, connect: () => void }} options
   */
  constructor ({ backoff = defaultBackoff, random = Math.random, wakeups = browserWakeups(), connect }) {
    this.backoff = backoff
    this.random = random
    this.connect = connect
    /** Tries that failed in a row: reset once a socket works end to end. */
    this.failures = 0
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined
    this.stopWakeups = onWakeup(wakeups, () => { if (this.timer !== undefined) this.now() })
  }

  /**
   * Schedules the next try after a backoff, or at once (unless the last try failed too: a
   * server that keeps closing is not hammered); returns its delay.
   * @param {'backoff' | 'now'} when
   */
  schedule (when) {
    this.cancel()
    const delayMs = when === 'now' && this.failures === 0 ? 0 : backoffDelayMs(this.failures, this.backoff, this.random)
    this.failures += 1
    this.timer = setTimeout(() => { this.now() }, delayMs)
    return delayMs
  }

  /** Tries now, instead of when the timer says. */
  now () {
    this.cancel()
    this.connect()
  }

  cancel () {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  /** The connection works: the next drop starts the backoff afresh. */
  succeeded () {
    this.failures = 0
  }

  stop () {
    this.cancel()
    this.stopWakeups()
  }
}
