// @ts-check

/** @import { Entry } from './events.js' */

/** What a topic name is (docs/protocol.md, Names and texts). */
export const topicPattern = /^[a-z0-9][a-z0-9_.-]{0,63}$/

/**
 * One topic's place in its log, and what to ask the server so that its user gets every entry
 * (message or change) once, in id order, across any number of dropped sockets.
 *
 * `held` is the id up to which every entry has been told to the user. An entry is told only
 * when it continues what is held: from a reply to a subscribe (the most recent history when
 * nothing is held yet, else everything after `held`, cut by `truncated`) or live, on a socket
 * whose live feed is known to continue `held` (`continuous`). Everything else is left to the
 * catch-up, which asks `since: held` until a reply is no longer truncated: the server sends
 * nothing live meanwhile and resumes from that reply's end (docs/protocol.md, Catching up).
 * A socket that drops mid-way leaves `held` where the last reply stopped, and the next one
 * goes on from there. Nothing here counts on ids being consecutive, only on each reply and
 * each socket's live feed being without holes.
 */
export class TopicFeed {
  /**
   * @param {string} topic
   * @param {number} [held] every entry up to this id is held already (a `since` given by the user)
   */
  constructor (topic, held) {
    this.topic = topic
    /** @type {number | undefined} */
    this.held = held
    /** Whether the user wants the topic: subscribed, and not unsubscribed since. */
    this.wanted = true
    /** This socket's live feed continues `held`: a live entry after it can be told. */
    this.continuous = false
    /**
     * The subscribes asked on this socket and not answered yet, in order: a reply is read
     * as the answer to the first (`plain`: the most recent history; `since`: after `held`).
     * @type {Array<'plain' | 'since'>}
     */
    this.asks = []
    /** How many of the first `asks` were asked before a restart: their answers are ignored. */
    this.stale = 0
    /** Unavailable subscribes in a row, for the backoff before the next. */
    this.failures = 0
  }

  /**
   * Starts again from `since`: a number (everything after it, told even if it was told
   * before), or `recent` (the most recent history, as if nothing were held).
   * @param {number | 'recent'} since
   */
  restart (since) {
    this.held = since === 'recent' ? undefined : since
    this.continuous = false
    this.stale = this.asks.length
  }

  /** The topic is live on this socket: every entry up to now has been told, and nothing is asked. */
  get caughtUp () {
    return this.wanted && this.continuous && this.asks.length === 0
  }

  /** The subscribe to send now. @returns {{ type: 'subscribe', topic: string, since?: number }} */
  ask () {
    if (this.held === undefined) {
      this.asks.push('plain')
      return { type: 'subscribe', topic: this.topic }
    }
    this.asks.push('since')
    return { type: 'subscribe', topic: this.topic, since: this.held }
  }

  /** The server subscribed a new socket to this topic as it opened (the URL's topic): a plain subscribe. */
  askedOnOpen () {
    this.asks.push('plain')
  }

  /**
   * The first subscribe asked was refused: it is no longer waiting for an answer.
   * @returns {boolean} whether it was asked since the last restart (then ask again)
   */
  refused () {
    this.asks.shift()
    if (this.stale === 0) return true
    this.stale -= 1
    return false
  }

  /**
   * A `subscribed` frame of this topic.
   * @param {{ history: Entry[], truncated?: boolean, lastId?: number }} frame
   * @returns {{ entries: Entry[], more: boolean }} entries: what to tell the user, in order;
   *   more: the topic is not caught up and nothing else is asked: ask again (`ask`)
   */
  subscribed (frame) {
    const asked = this.asks.shift() ?? 'plain'
    if (this.stale > 0 || !this.wanted) {
      // Asked before a restart, or for a topic given up since: nothing in it is told.
      this.stale = Math.max(0, this.stale - 1)
      this.continuous = false
      return { entries: [], more: false }
    }
    const history = frame.history
    // A truncated reply always holds something; one that does not cannot be continued from.
    const truncated = frame.truncated === true && history.length > 0
    /** @type {Entry[]} */
    let entries = []
    if (asked === 'plain' && this.held !== undefined) {
      // The most recent history, over what is held: it may leave a gap (and it holds no
      // changes made meanwhile to messages already told). Catch up from `held` instead.
      this.continuous = false
    } else {
      const held = this.held
      entries = held === undefined ? history : history.filter((entry) => entry.id > held)
      const last = entries.at(-1)?.id
      if (last !== undefined) this.held = last
      // A topic's first history: held from its last id (an empty topic from its start).
      if (asked === 'plain') this.held = Math.max(this.held ?? 0, frame.lastId ?? 0)
      this.continuous = !truncated
    }
    return { entries, more: !this.continuous && this.asks.length === 0 }
  }

  /**
   * A live entry: whether to tell it (it continues what is held), which then holds it.
   * @param {{ id: number }} entry
   */
  live (entry) {
    if (!this.wanted || !this.continuous) return false
    if (this.held !== undefined && entry.id <= this.held) return false
    this.held = entry.id
    return true
  }

  /** The socket is gone: a new one asks again. */
  dropped () {
    this.asks = []
    this.stale = 0
    this.continuous = false
  }
}
