// @ts-check

import { resendDelayMs } from './backoff.js'
import { CanopyError } from './errors.js'
import { TopicFeed } from './topic-feed.js'

/**
 * @import { ClientEvents, ErrorFrame } from './events.js'
 */

/**
 * What the client's parts send through: the socket open now, if any.
 * @typedef {object} Link
 * @property {(frame: object) => void} send sends on the open socket (nothing when none is)
 * @property {() => boolean} open whether a socket is open
 * @property {(delayMs: number, action: () => void) => void} later runs `action` after `delayMs`, unless the socket drops first
 */
/** @typedef {<K extends keyof ClientEvents>(type: K, event: ClientEvents[K]) => void} Emit */

/** The URL's topic while none is wanted: not a topic name, so the socket starts subscribed to nothing. */
export const noTopic = '-'

/**
 * The topics a client subscribes to, on whichever socket is open: each topic's feed
 * (topic-feed.js), the subscribes asked and not answered, and the promises waiting for a
 * topic to catch up.
 */
export class Subscriptions {
  /** @type {Map<string, TopicFeed>} every topic subscribed to, in that order (unsubscribed ones keep their place) */
  #feeds = new Map()
  /** @type {Map<string, Array<{ resolve: () => void, reject: (error: Error) => void }>>} */
  #waiters = new Map()
  /** @type {string[]} topics asked on this socket, in order: an error without ref or topic answers the first */
  #asked = []

  /** @param {{ link: Link, emit: Emit }} options */
  constructor ({ link, emit }) {
    this.link = link
    this.emit = emit
  }

  /** The topics wanted, in the order they were subscribed. */
  get topics () {
    return [...this.#feeds.values()].filter((feed) => feed.wanted).map((feed) => feed.topic)
  }

  /**
   * @param {string} topic
   * @param {number | 'recent' | undefined} since
   * @returns {Promise<void>}
   */
  subscribe (topic, since) {
    let feed = this.#feeds.get(topic)
    const ask = feed === undefined || !feed.wanted || since !== undefined
    if (feed === undefined) this.#feeds.set(topic, feed = new TopicFeed(topic, typeof since === 'number' ? since : undefined))
    else if (since !== undefined) feed.restart(since)
    feed.wanted = true
    if (!ask && feed.caughtUp) return Promise.resolve()
    /** @type {Promise<void>} */
    const promise = new Promise((resolve, reject) => {
      const waiters = this.#waiters.get(topic) ?? []
      waiters.push({ resolve: () => { resolve() }, reject })
      this.#waiters.set(topic, waiters)
    })
    if (ask) this.#ask(feed)
    return promise
  }

  /** @param {string} topic */
  unsubscribe (topic) {
    const feed = this.#feeds.get(topic)
    if (feed === undefined || !feed.wanted) return
    feed.wanted = false
    this.#settle(topic, new CanopyError('unsubscribed', `unsubscribed from ${topic}`, { topic }))
    this.link.send({ type: 'unsubscribe', topic })
  }

  /**
   * The server ended the subscription (the user was removed from a private topic): the topic
   * is no longer wanted, and there is nothing to send. Subscribing again asks anew.
   * @param {string} topic
   */
  removed (topic) {
    const feed = this.#feeds.get(topic)
    if (feed === undefined || !feed.wanted) return
    feed.wanted = false
    this.#settle(topic, new CanopyError('unsubscribed', `removed from ${topic}`, { topic }))
  }

  /** Whether frames of `topic` are for the user. @param {unknown} topic */
  wants (topic) {
    return typeof topic === 'string' && this.#feeds.get(topic)?.wanted === true
  }

  /**
   * A new socket is open, subscribed by the server to `urlTopic`: every other topic is asked.
   * @param {string} urlTopic
   */
  opened (urlTopic) {
    // The server answers the URL's topic first.
    this.#asked = [urlTopic]
    const urlFeed = this.#feeds.get(urlTopic)
    urlFeed?.askedOnOpen()
    if (urlFeed?.wanted === false) this.link.send({ type: 'unsubscribe', topic: urlTopic })
    for (const feed of this.#feeds.values()) if (feed !== urlFeed && feed.wanted) this.#ask(feed)
  }

  dropped () {
    this.#asked = []
    for (const feed of this.#feeds.values()) feed.dropped()
  }

  /** Closed for good: every promise waiting rejects with `error`. @param {Error} error */
  end (error) {
    for (const topic of [...this.#waiters.keys()]) this.#settle(topic, error)
  }

  /** A live message or update: whether to tell it (once, in order). @param {{ [field: string]: any }} frame */
  live (frame) {
    return typeof frame.topic === 'string' && typeof frame.id === 'number' && this.#feeds.get(frame.topic)?.live({ id: frame.id }) === true
  }

  /** @param {{ [field: string]: any }} frame a `subscribed` frame */
  subscribed (frame) {
    const topic = String(frame.topic)
    const index = this.#asked.indexOf(topic)
    if (index >= 0) this.#asked.splice(index, 1)
    const feed = this.#feeds.get(topic)
    if (feed === undefined) return
    const { entries, more } = feed.subscribed({ history: Array.isArray(frame.history) ? frame.history : [], truncated: frame.truncated, lastId: frame.lastId })
    if (!feed.wanted) return
    feed.failures = 0
    for (const entry of entries) {
      if (entry.type === 'update') this.emit('update', entry)
      else this.emit('message', entry)
    }
    if (more) this.#ask(feed)
    const caughtUp = feed.caughtUp
    this.emit('subscribed', { topic, present: Array.isArray(frame.present) ? frame.present : [], truncated: frame.truncated === true, caughtUp })
    if (caughtUp) this.#settle(topic)
  }

  /**
   * An error without a ref: the refusal of a subscribe (the one of its topic, or the first
   * asked: the server answers a socket's frames in order). Returns false for the expected
   * `bad_topic` of a socket opened on no topic, which is no news to the user.
   * @param {ErrorFrame} frame
   */
  refused (frame) {
    const index = frame.topic === undefined ? 0 : this.#asked.indexOf(frame.topic)
    const topic = index >= 0 ? this.#asked.splice(index, 1)[0] : undefined
    if (topic === noTopic) return frame.code !== 'bad_topic'
    const feed = topic === undefined ? undefined : this.#feeds.get(topic)
    if (feed === undefined || !feed.refused() || !feed.wanted) return true
    if (frame.code === 'rate_limited' || frame.code === 'unavailable') {
      // Asked again once the hint is over (rate_limited), or after a backoff (unavailable).
      if (frame.code === 'unavailable') feed.failures += 1
      this.link.later(resendDelayMs(frame, feed.failures), () => {
        if (feed.wanted && feed.asks.length === 0) this.#ask(feed)
      })
    } else {
      feed.wanted = false
      this.#settle(feed.topic, new CanopyError(frame.code, frame.message, { topic: feed.topic }))
    }
    return true
  }

  /** Sends a subscribe for `feed`, when a socket is open (a new socket asks every topic). @param {TopicFeed} feed */
  #ask (feed) {
    if (!this.link.open()) return
    this.#asked.push(feed.topic)
    this.link.send(feed.ask())
  }

  /** Resolves (or rejects, with `error`) the promises waiting for `topic`. @param {string} topic @param {Error} [error] */
  #settle (topic, error) {
    const waiters = this.#waiters.get(topic) ?? []
    this.#waiters.delete(topic)
    for (const waiter of waiters) {
      if (error === undefined) waiter.resolve()
      else waiter.reject(error)
    }
  }
}
