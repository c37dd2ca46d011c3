// @ts-check

import { resendDelayMs } from './backoff.js'
import { CanopyError } from './errors.js'
import { Outbox } from './outbox.js'
import { topicPattern } from './topic-feed.js'

/**
 * @import { AckFrame, ErrorFrame } from './events.js'
 * @import { OutboxEntry, OutboxStore } from './outbox.js'
 * @import { Link } from './subscriptions.js'
 */

/** The server closes a socket on a frame over this (1009): such a publish is refused here. */
const maxFrameBytes = 64 * 1024

/**
 * A client's publishes, from `publish` to their ack: kept in the outbox, sent while fewer
 * than 32 are in flight, sent again after `rate_limited` once its `retryAfterMs` is over,
 * after `unavailable` after a backoff, and on every new socket, always with their first `ref`.
 */
export class Publishing {
  #outbox

  /** @param {{ link: Link, store?: OutboxStore }} options */
  constructor ({ link, store }) {
    this.link = link
    this.#outbox = new Outbox({ store })
  }

  /** How many are not acknowledged yet. */
  get size () {
    return this.#outbox.size
  }

  /** @returns {OutboxEntry[]} */
  pending () {
    return this.#outbox.entries()
  }

  /** @param {OutboxEntry[]} entries kept by the store from before: they go first */
  restore (entries) {
    this.#outbox.restore(entries)
  }

  /**
   * @param {string} topic
   * @param {string | { text?: string, data?: unknown, replyTo?: number }} body
   * @param {string} ref
   * @returns {Promise<{ id: number, at: string }>}
   */
  publish (topic, body, ref) {
    /** @type {OutboxEntry} */
    const entry = { type: 'publish', topic, ...(typeof body === 'string' ? { text: body } : body), ref }
    if (!topicPattern.test(topic)) return Promise.reject(new CanopyError('bad_topic', `not a topic name: ${topic}`, { ref }))
    if (this.#outbox.get(ref) !== undefined) return Promise.reject(new CanopyError('bad_request', `a publish with ref ${ref} is on its way already`, { ref }))
    if (new TextEncoder().encode(JSON.stringify(entry)).length > maxFrameBytes) {
      return Promise.reject(new CanopyError('bad_request', 'the publish is over 64 KiB', { ref }))
    }
    const promise = new Promise((resolve, reject) => { this.#outbox.add(entry, { resolve, reject }) })
    this.flush()
    return /** @type {Promise<{ id: number, at: string }>} */ (promise)
  }

  /** Sends what may be sent now. */
  flush () {
    if (!this.link.open()) return
    for (const entry of this.#outbox.takeSendable()) this.link.send(entry)
  }

  /**
   * An ack: the publish it answers is done (its promise resolves). The next are sent by
   * `flush`, once the ack has been told.
   * @param {AckFrame} frame
   * @returns {boolean} whether it acks one of these publishes
   */
  acked (frame) {
    const pending = this.#outbox.remove(frame.ref)
    pending?.settle?.resolve({ id: frame.id, at: frame.at })
    return pending !== undefined
  }

  /** @param {ErrorFrame} frame @returns {boolean} whether it refuses one of these publishes */
  refused (frame) {
    const ref = frame.ref
    const pending = ref === undefined ? undefined : this.#outbox.get(ref)
    if (ref === undefined || pending === undefined) return false
    if (frame.code === 'rate_limited' || frame.code === 'unavailable') {
      // rate_limited: the polite client sends it again once its own hint is over (the server
      // gives each refused publish a later token), still counted in flight meanwhile.
      // unavailable: again after a backoff.
      if (frame.code === 'unavailable') pending.failures += 1
      this.#outbox.retry(ref)
      this.link.later(resendDelayMs(frame, pending.failures), () => {
        this.#outbox.due(ref)
        this.flush()
      })
    } else {
      this.#outbox.remove(ref)
      pending.settle?.reject(new CanopyError(frame.code, frame.message, { ref }))
      this.flush()
    }
    return true
  }

  /** The socket is gone: everything not acked goes again on the next, in order. */
  dropped () {
    this.#outbox.dropped()
  }

  /**
   * Closed for good: every promise rejects with `error`; `forget` also empties the store.
   * @param {Error} error
   * @param {{ forget: boolean }} options
   */
  end (error, options) {
    this.#outbox.abandon(error, options)
  }
}
