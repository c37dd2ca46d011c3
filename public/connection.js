import { CloseCode } from '/protocol.js'
import { me } from './api.js'
import { newRef, resendDelayMs, retryable } from './resend.js'

/**
 * The page's side of /chat: one WebSocket for every topic the reader has joined, which
 * reconnects by itself, and the outbox of messages not yet acknowledged, which are resent
 * with their `ref` (the server stores a repeated ref only once), so nothing typed is lost.
 * A refused publish or subscribe is sent again when resend.js says.
 */

const firstRetryMs = 500
const maxRetryMs = 15_000
/** Publishes sent and not yet acknowledged on a socket at most: within this the server never closes a client that waits. */
const maxPublishesInFlight = 32

/**
 * @typedef {{ ref: string, topic: string, text: string, failures: number }} OutboxEntry
 * @typedef {{ topic: string, since?: number, tag: unknown, failures: number }} SubscribeRequest
 *   a subscribe sent, with the caller's tag, which comes back with its answer
 * @typedef {'connecting' | 'connected' | 'reconnecting'} ConnectionState
 * @typedef {object} ChatSocketListeners
 * @property {(state: ConnectionState) => void} status
 * @property {(user: { id: number, name: string }) => void} user
 * @property {() => void} opened a new socket is open, subscribed to the open topic only: subscribe the others
 * @property {(frame: any, request: SubscribeRequest | undefined) => void} subscribed a `subscribed` frame, with the subscribe it answers
 * @property {(frame: any) => void} frame every other frame but acks and the errors this connection handles
 * @property {() => void} dropped the socket closed: what it was sending is cut off, a new one starts afresh
 * @property {(entry: OutboxEntry, ack: { id: number, at: string }) => void} ack
 * @property {(entry: OutboxEntry, error: { code: string, message: string }) => void} failed
 * @property {(entry: OutboxEntry, error: { code: string, message: string }) => void} retrying
 * @property {() => void} loggedOut the session is gone: show the login form
 */

export class ChatSocket {
  /**
   * @param {{ openTopic: () => { topic: string, tag: unknown }, listeners: ChatSocketListeners }} options
   *   openTopic: the open topic, subscribed first on every (re)connection, and the tag given
   *   back with the answer to that subscribe
   */
  constructor ({ openTopic, listeners }) {
    this.openTopic = openTopic
    this.listeners = listeners
    /** @type {WebSocket | undefined} */
    this.socket = undefined
    this.open = false
    this.stopped = false
    /** Counts the sockets opened: a reply to something asked on an earlier socket is stale. */
    this.socketCount = 0
    /** Failed connection attempts since the last good one: the backoff exponent. */
    this.failures = 0
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined
    /** @type {Map<string, OutboxEntry>} unacknowledged messages, in the order they were typed */
    this.outbox = new Map()
    this.resetSocketState()
    this.retryNow = () => {
      if (this.retryTimer === undefined || document.visibilityState === 'hidden') return
      clearTimeout(this.retryTimer)
      void this.connect()
    }
    window.addEventListener('online', this.retryNow)
    document.addEventListener('visibilitychange', this.retryNow)
    void this.connect()
  }

  /** @private What belongs to one socket, forgotten when it closes. */
  resetSocketState () {
    /** @type {SubscribeRequest[]} subscribes sent on this socket, not yet answered, in order */
    this.asked = []
    /** @type {Set<string>} the topics this socket is subscribed to, or asked to be */
    this.topics = new Set()
    /** @type {Set<string>} refs sent on this socket and not acknowledged yet (waiting to be resent included) */
    this.inFlight = new Set()
    for (const timer of this.timers ?? []) clearTimeout(timer)
    /** @type {Set<ReturnType<typeof setTimeout>>} resends waiting on this socket */
    this.timers = new Set()
  }

  /** Closes for good (logging out): nothing is reconnected or resent. */
  stop () {
    this.stopped = true
    clearTimeout(this.retryTimer)
    window.removeEventListener('online', this.retryNow)
    document.removeEventListener('visibilitychange', this.retryNow)
    this.outbox.clear()
    this.resetSocketState()
    this.socket?.close(1000, 'bye')
    this.socket = undefined
  }

  /** Whether the current socket is subscribed to `topic`, or has asked to be. */
  has (topic) {
    return this.open && this.topics.has(topic)
  }

  /**
   * Subscribes the current socket to `topic`; the answer comes to the `subscribed` listener with
   * `tag`. Nothing is sent while no socket is open: the next one calls `opened`.
   * @param {string} topic
   * @param {{ since?: number, tag: unknown }} options
   */
  subscribe (topic, { since, tag }) {
    this.sendSubscription({ topic, since, tag, failures: 0 })
  }

  /** The socket no longer carries `topic` (left by the reader); a new socket never subscribes it. */
  unsubscribe (topic) {
    if (!this.has(topic)) return
    this.topics.delete(topic)
    this.send({ type: 'unsubscribe', topic })
  }

  /** Queues a message; it is sent now if the socket is open, else as soon as one is. */
  publish (topic, text) {
    /** @type {OutboxEntry} */
    const entry = { ref: newRef(), topic, text, failures: 0 }
    this.outbox.set(entry.ref, entry)
    this.sendPublishes()
    return entry
  }

  /** @private */
  sendSubscription (request) {
    if (!this.open) return
    this.topics.add(request.topic)
    this.asked.push(request)
    const { topic, since } = request
    this.send(since === undefined ? { type: 'subscribe', topic } : { type: 'subscribe', topic, since })
  }

  /** @private Sends what the outbox holds that this socket has not sent yet, up to the bound in flight. */
  sendPublishes () {
    if (!this.open) return
    for (const entry of this.outbox.values()) {
      if (this.inFlight.size >= maxPublishesInFlight) return
      if (this.inFlight.has(entry.ref)) continue
      this.inFlight.add(entry.ref)
      this.sendEntry(entry)
    }
  }

  /** @private */
  sendEntry (entry) {
    if (this.outbox.has(entry.ref)) this.send({ type: 'publish', topic: entry.topic, text: entry.text, ref: entry.ref })
  }

  /** @private */
  send (frame) {
    if (this.open && this.socket !== undefined) this.socket.send(JSON.stringify(frame))
  }

  /** @private Runs `action` after `delayMs` on this socket only: a new socket sends everything afresh. */
  later (delayMs, action) {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      action()
    }, delayMs)
    this.timers.add(timer)
  }

  /**
   * @private
   * Asks /api/me first: it hands out a fresh ticket and tells a dead session (401) from a
   * server that is away, without a failing WebSocket handshake in the console.
   */
  async connect () {
    this.retryTimer = undefined
    if (this.stopped) return
    this.listeners.status(this.failures === 0 ? 'connecting' : 'reconnecting')
    let session
    try {
      session = await me()
    } catch (error) {
      if (this.stopped) return
      if (error.status === 401) {
        this.listeners.loggedOut()
        return
      }
      this.scheduleRetry()
      return
    }
    if (this.stopped) return
    this.listeners.user(session.user)

    const url = new URL('/chat', location.href)
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:'
    const socketTopic = this.openTopic()
    url.search = new URLSearchParams({ ticket: session.wsTicket, topic: socketTopic.topic }).toString()
    const socket = new WebSocket(url)
    this.socket = socket
    socket.addEventListener('open', () => {
      if (socket !== this.socket) return
      this.open = true
      this.socketCount += 1
      this.resetSocketState()
      // The URL's topic is subscribed on open, as if asked first.
      this.topics.add(socketTopic.topic)
      this.asked.push({ ...socketTopic, failures: 0 })
      // Another topic was opened while the socket was opening.
      const open = this.openTopic()
      if (open.topic !== socketTopic.topic) this.subscribe(open.topic, { tag: open.tag })
      this.sendPublishes()
      this.listeners.opened()
    })
    socket.addEventListener('message', (event) => {
      if (socket === this.socket) this.receive(event.data)
    })
    socket.addEventListener('close', (event) => {
      if (socket !== this.socket) return
      this.socket = undefined
      this.open = false
      this.resetSocketState()
      if (this.stopped) return
      this.listeners.dropped()
      if (event.code === CloseCode.loggedOut) {
        this.listeners.loggedOut()
        return
      }
      this.scheduleRetry()
    })
  }

  /** @private Exponential backoff with jitter, so a restarted server is not hit by everyone at once. */
  scheduleRetry () {
    const ceilingMs = Math.min(maxRetryMs, firstRetryMs * 2 ** this.failures)
    this.failures += 1
    this.listeners.status('reconnecting')
    this.retryTimer = setTimeout(() => { void this.connect() }, ceilingMs / 2 + Math.random() * ceilingMs / 2)
  }

  /**
   * @private
   * The subscribe a `subscribed` or a refusal without a ref answers. The server answers the
   * frames of a connection in the order they were sent, so it is the first one asked (for
   * its topic, when the answer names one).
   */
  answered (topic) {
    const index = topic === undefined ? 0 : this.asked.findIndex((asked) => asked.topic === topic)
    if (index < 0 || index >= this.asked.length) return undefined
    return this.asked.splice(index, 1)[0]
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
        this.listeners.status('connected')
        this.listeners.subscribed(frame, this.answered(frame.topic))
        return
      case 'ack': {
        const entry = this.outbox.get(frame.ref)
        if (entry === undefined) return
        this.outbox.delete(frame.ref)
        this.inFlight.delete(frame.ref)
        this.listeners.ack(entry, frame)
        this.sendPublishes()
        return
      }
      case 'unsubscribed':
        // Removed from a private topic: no longer held, so that being added again subscribes it again.
        if (frame.reason === 'removed') this.topics.delete(frame.topic)
        this.listeners.frame(frame)
        return
      case 'error':
        if (frame.ref !== undefined && this.outbox.has(frame.ref)) this.publishRefused(frame)
        else if (frame.ref === undefined && this.asked.length > 0) this.subscribeRefused(frame)
        else this.listeners.frame(frame)
        return
      default:
        this.listeners.frame(frame)
    }
  }

  /** @private A publish of the outbox was refused: sent again after its wait, or given up. */
  publishRefused (error) {
    const entry = /** @type {OutboxEntry} */ (this.outbox.get(error.ref))
    if (!retryable(error)) {
      this.outbox.delete(entry.ref)
      this.inFlight.delete(entry.ref)
      this.listeners.failed(entry, error)
      this.sendPublishes()
      return
    }
    this.listeners.retrying(entry, error)
    this.later(resendDelayMs(error, entry), () => { this.sendEntry(entry) })
  }

  /** @private A subscribe was refused: asked again after its wait, or reported. */
  subscribeRefused (error) {
    const request = this.answered(error.topic)
    if (request === undefined || !retryable(error)) {
      if (request !== undefined) this.topics.delete(request.topic)
      this.listeners.frame(error)
      return
    }
    this.later(resendDelayMs(error, request), () => {
      this.sendSubscription(request)
    })
  }
}
