import { CloseCode } from '/protocol.js'
import { me } from './api.js'

/**
 * The page's side of /chat: one WebSocket that reconnects by itself, and the outbox of
 * messages not yet acknowledged, which are resent with their `ref` on every new socket,
 * so nothing typed is lost (the server stores a repeated ref only once).
 */

const firstRetryMs = 500
const maxRetryMs = 15_000
/** After `rate_limited` or `unavailable` a publish is sent again, same ref, after about this. */
const resendMs = 1500
const retryableErrors = new Set(['rate_limited', 'unavailable'])

/**
 * @typedef {{ ref: string, topic: string, text: string }} OutboxEntry
 * @typedef {'connecting' | 'connected' | 'reconnecting'} ConnectionState
 * @typedef {object} Hooks
 * @property {(state: ConnectionState) => void} status
 * @property {(user: { id: number, name: string }) => void} user
 * @property {(frame: any) => void} frame every frame but acks and errors that answer a publish
 * @property {() => void} dropped the socket closed: what it was sending is cut off, a new one starts afresh
 * @property {(entry: OutboxEntry, ack: { id: number, at: string }) => void} ack
 * @property {(entry: OutboxEntry, error: { code: string, message: string }) => void} failed
 * @property {(entry: OutboxEntry, error: { code: string, message: string }) => void} retrying
 * @property {() => void} loggedOut the session is gone: show the login form
 */

export class ChatConnection {
  /**
   * @param {string} topic the topic to subscribe to on every (re)connection
   * @param {Hooks} hooks
   */
  constructor (topic, hooks) {
    this.topic = topic
    this.hooks = hooks
    /** @type {WebSocket | undefined} */
    this.socket = undefined
    this.open = false
    this.stopped = false
    /** Failed connection attempts since the last good one: the backoff exponent. */
    this.failures = 0
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined
    /** @type {Map<string, OutboxEntry>} unacknowledged messages, in the order they were typed */
    this.outbox = new Map()
    this.retryNow = () => {
      if (this.retryTimer === undefined || document.visibilityState === 'hidden') return
      clearTimeout(this.retryTimer)
      void this.connect()
    }
    window.addEventListener('online', this.retryNow)
    document.addEventListener('visibilitychange', this.retryNow)
    void this.connect()
  }

  /** Closes for good (logging out): nothing is reconnected or resent. */
  stop () {
    this.stopped = true
    clearTimeout(this.retryTimer)
    window.removeEventListener('online', this.retryNow)
    document.removeEventListener('visibilitychange', this.retryNow)
    this.outbox.clear()
    this.socket?.close(1000, 'bye')
    this.socket = undefined
  }

  /** Switches the subscription; a reconnection subscribes to the new topic. */
  setTopic (topic) {
    const previous = this.topic
    this.topic = topic
    if (previous === topic) return
    this.send({ type: 'unsubscribe', topic: previous })
    this.send({ type: 'subscribe', topic })
  }

  /** Subscribes again to catch up: the server replies with every message after `since`. */
  catchUp (topic, since) {
    this.send({ type: 'subscribe', topic, since })
  }

  /** Queues a message; it is sent now if the socket is open, else as soon as one is. */
  publish (topic, text) {
    /** @type {OutboxEntry} */
    const entry = { ref: crypto.randomUUID(), topic, text }
    this.outbox.set(entry.ref, entry)
    this.sendEntry(entry)
    return entry
  }

  /** @private */
  sendEntry (entry) {
    this.send({ type: 'publish', topic: entry.topic, text: entry.text, ref: entry.ref })
  }

  /** @private */
  send (frame) {
    if (this.open && this.socket !== undefined) this.socket.send(JSON.stringify(frame))
  }

  /**
   * @private
   * Asks /api/me first: it hands out a fresh ticket and tells a dead session (401) from a
   * server that is away, without a failing WebSocket handshake in the console.
   */
  async connect () {
    this.retryTimer = undefined
    if (this.stopped) return
    this.hooks.status(this.failures === 0 ? 'connecting' : 'reconnecting')
    let session
    try {
      session = await me()
    } catch (error) {
      if (this.stopped) return
      if (error.status === 401) {
        this.hooks.loggedOut()
        return
      }
      this.scheduleRetry()
      return
    }
    if (this.stopped) return
    this.hooks.user(session.user)

    const url = new URL('/chat', location.href)
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:'
    url.search = new URLSearchParams({ ticket: session.wsTicket, topic: this.topic }).toString()
    const socket = new WebSocket(url)
    const socketTopic = this.topic
    this.socket = socket
    socket.addEventListener('open', () => {
      if (socket !== this.socket) return
      this.open = true
      // The topic changed while the socket was opening.
      if (this.topic !== socketTopic) {
        this.send({ type: 'unsubscribe', topic: socketTopic })
        this.send({ type: 'subscribe', topic: this.topic })
      }
      for (const entry of this.outbox.values()) this.sendEntry(entry)
    })
    socket.addEventListener('message', (event) => {
      if (socket === this.socket) this.receive(event.data)
    })
    socket.addEventListener('close', (event) => {
      if (socket !== this.socket) return
      this.socket = undefined
      this.open = false
      if (this.stopped) return
      this.hooks.dropped()
      if (event.code === CloseCode.loggedOut) {
        this.hooks.loggedOut()
        return
      }
      this.scheduleRetry()
    })
  }

  /** @private Exponential backoff with jitter, so a restarted server is not hit by everyone at once. */
  scheduleRetry () {
    const ceilingMs = Math.min(maxRetryMs, firstRetryMs * 2 ** this.failures)
    this.failures += 1
    this.hooks.status('reconnecting')
    this.retryTimer = setTimeout(() => { void this.connect() }, ceilingMs / 2 + Math.random() * ceilingMs / 2)
  }

  /** @private */
  receive (data) {
    let frame
    try {
      frame = JSON.parse(data)
    } catch {
      return
    }
    switch (frame.type) {
      case 'subscribed':
        // The connection works end to end: the next drop starts the backoff afresh.
        this.failures = 0
        this.hooks.status('connected')
        this.hooks.frame(frame)
        return
      case 'ack': {
        const entry = this.outbox.get(frame.ref)
        if (entry === undefined) return
        this.outbox.delete(frame.ref)
        this.hooks.ack(entry, frame)
        return
      }
      case 'error': {
        const entry = frame.ref === undefined ? undefined : this.outbox.get(frame.ref)
        if (entry === undefined) {
          this.hooks.frame(frame)
          return
        }
        if (retryableErrors.has(frame.code)) {
          this.hooks.retrying(entry, frame)
          setTimeout(() => {
            if (this.outbox.has(entry.ref)) this.sendEntry(entry)
          }, resendMs / 2 + Math.random() * resendMs)
          return
        }
        this.outbox.delete(entry.ref)
        this.hooks.failed(entry, frame)
        return
      }
      default:
        this.hooks.frame(frame)
    }
  }
}
