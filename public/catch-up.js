import { historyLimit } from '/protocol.js'

/**
 * The page's side of `subscribe` with `since`, for the open topic: up to which id the log
 * holds every message, and what to ask for when a reconnection left a gap.
 *
 * The log holds a run without holes from the first message it was shown up to `heldTo`.
 * Whatever arrives above a gap (the most recent history of a new socket, live messages
 * meanwhile) is shown but does not move `heldTo`, so that a socket dropped in the middle
 * of a catch-up resumes from where the catch-up stopped, never from the newest message seen.
 * Nothing here counts on ids being consecutive: only on each `subscribed` reply and each
 * socket's live feed being without holes, which docs/protocol.md promises (Ordering).
 */
export class CatchUp {
  constructor () {
    this.reset()
  }

  /** A topic opened afresh: nothing is held. */
  reset () {
    /** @type {number | undefined} every message of the run is in the log up to this id */
    this.heldTo = undefined
    /** A `subscribe` with `since` = heldTo is on its way: the next `subscribed` answers it. */
    this.catchingUp = false
    this.dropped()
  }

  /** The socket is gone: whatever it delivered stays shown; a new one starts afresh. */
  dropped () {
    /**
     * The socket's own run: its first `subscribed` history and the live messages after it,
     * which come without holes. undefined until it delivered a message.
     * @type {number | undefined}
     */
    this.socketFirst = undefined
    /** @type {number | undefined} */
    this.socketLast = undefined
    /** The socket's run continues the log's: its messages move heldTo. */
    this.live = false
    this.catchingUp = false
  }

  /**
   * A live message on the socket.
   * @param {number} id
   */
  message (id) {
    this.socketFirst ??= id
    this.socketLast = Math.max(this.socketLast ?? id, id)
    if (this.live) this.heldTo = Math.max(this.heldTo ?? id, id)
  }

  /**
   * A `subscribed` frame of the topic.
   * @param {{ history: Array<{ id: number }>, truncated?: boolean }} frame
   * @returns {number | undefined} the `since` to subscribe with next, when something is missing
   */
  subscribed (frame) {
    const first = frame.history[0]?.id
    const last = frame.history.at(-1)?.id
    if (this.catchingUp) return this.caughtUp(last, frame.truncated === true)

    // The most recent history, on a new socket or a new topic: the socket's run starts here.
    this.socketFirst = first
    this.socketLast = last
    const wholeTopic = frame.history.length < historyLimit
    if (this.heldTo === undefined) {
      // Nothing was held: this is where the log starts (an empty topic is held from its start).
      this.heldTo = last ?? (wholeTopic ? 0 : undefined)
      this.live = true
      return undefined
    }
    if (wholeTopic || (first !== undefined && first <= this.heldTo)) {
      // It reaches back into what the log holds: no gap.
      this.heldTo = Math.max(this.heldTo, last ?? this.heldTo)
      this.live = true
      return undefined
    }
    // Back after a drop, and the recent history may not reach back to what the log holds.
    this.catchingUp = true
    return this.heldTo
  }

  /** @private The answer to `since` = heldTo: every message after it, or the first of them. */
  caughtUp (last, truncated) {
    const end = last ?? this.heldTo ?? 0
    const reachedSocket = this.socketFirst !== undefined && end >= this.socketFirst
    if (!truncated || reachedSocket) {
      // Nothing is missing up to the socket's run, which goes on without holes from there.
      this.heldTo = Math.max(end, this.socketLast ?? end)
      this.catchingUp = false
      this.live = true
      return undefined
    }
    this.heldTo = end
    return end
  }
}
