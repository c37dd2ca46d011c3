// @ts-check

/**
 * When a client may send: the pause a `rate_limited` asks for (nothing is published or
 * subscribed until it is over, whatever socket is open then, since the publish rate is the
 * user's), and the resends waiting on one socket (dropped with it: a new socket sends
 * everything afresh).
 */
export class Pace {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #pause = undefined
  #pausedUntilMs = 0
  /** @type {Set<ReturnType<typeof setTimeout>>} */
  #timers = new Set()

  /** @param {{ resumed: () => void, now?: () => number }} options resumed: the pause is over */
  constructor ({ resumed, now = Date.now }) {
    this.resumed = resumed
    this.now = now
  }

  get paused () {
    return this.#pause !== undefined
  }

  /** Holds sending back for `delayMs`, unless a pause that ends later holds it already. @param {number} delayMs */
  pauseFor (delayMs) {
    const untilMs = this.now() + delayMs
    if (this.#pause !== undefined && untilMs <= this.#pausedUntilMs) return
    clearTimeout(this.#pause)
    this.#pausedUntilMs = untilMs
    this.#pause = setTimeout(() => {
      this.#pause = undefined
      this.resumed()
    }, delayMs)
  }

  /** Runs `action` after `delayMs`, unless the socket drops first. @param {number} delayMs @param {() => void} action */
  later (delayMs, action) {
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      action()
    }, delayMs)
    this.#timers.add(timer)
  }

  /** The socket is gone: its resends with it. The pause stays. */
  dropped () {
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
  }

  /** Closed for good. */
  stop () {
    this.dropped()
    clearTimeout(this.#pause)
    this.#pause = undefined
  }
}
