// @ts-check

import { chatUrl, credentials, TokenRefresh, Unauthorized } from './auth.js'
import { afterClose, Retry } from './backoff.js'
import { CanopyError } from './errors.js'
import { Emitter } from './events.js'
import { newRef } from './outbox.js'
import { Publishing } from './publishing.js'
import { Socket } from './socket.js'
import { noTopic, Subscriptions } from './subscriptions.js'
import { topicPattern } from './topic-feed.js'

/**
 * @import { Auth, Fetch } from './auth.js'
 * @import { BackoffOptions, WakeupTargets } from './backoff.js'
 * @import { AckFrame, ClientEvents, ErrorFrame, StateChange, UnsubscribedFrame } from './events.js'
 * @import { OutboxEntry, OutboxStore } from './outbox.js'
 * @import { WebSocketClass } from './socket.js'
 * @import { Link } from './subscriptions.js'
 */

// The client of /chat (docs/client.md): one socket for every topic, reconnected by itself. This
// file is the socket's life and the dispatch of frames; topics are subscriptions.js's, publishes publishing.js's.

/**
 * @typedef {object} ClientOptions
 * @property {string} [url] the server's base URL (http(s) or ws(s)); in a browser, the page's origin by default
 * @property {Auth} [auth] a session (the default: the browser's own), a bot's key or a token
 * @property {WebSocketClass} [WebSocket] the WebSocket class; globalThis.WebSocket by default (Node 20 has none: pass `ws`'s)
 * @property {Fetch} [fetch] for GET /api/me; globalThis.fetch by default
 * @property {OutboxStore} [outbox] keeps unacknowledged publishes across a reload
 * @property {BackoffOptions} [backoff] reconnection delays
 * @property {WakeupTargets} [wakeups] where `online` and `visibilitychange` are heard; the browser's by default
 */

/** @extends {Emitter<ClientEvents>} */
export class CanopyClient extends Emitter {
  /** @type {StateChange['state']} */
  #state = 'connecting'
  #ended = false
  /** @type {Socket | undefined} */
  #socket = undefined
  /** Connection attempts so far: a late answer to an earlier one is ignored. */
  #attempts = 0
  /** The current socket has delivered a frame: it works end to end. */
  #worked = false
  #subscriptions
  #publishing
  #retry
  /** @type {TokenRefresh | undefined} */
  #tokenRefresh

  /** @param {ClientOptions} [options] */
  constructor (options = {}) {
    super()
    const scope = /** @type {any} */ (globalThis)
    const url = options.url ?? scope.location?.origin
    const WebSocket = options.WebSocket ?? scope.WebSocket
    if (typeof url !== 'string') throw new TypeError('CanopyClient: no url (the server\'s base URL)')
    if (typeof WebSocket !== 'function') throw new TypeError('CanopyClient: no WebSocket: pass one (in Node 20, ws\'s WebSocket class)')
    this.url = url
    this.WebSocket = /** @type {WebSocketClass} */ (WebSocket)
    /** @type {Auth} */
    this.auth = options.auth ?? { kind: 'session' }
    /** @type {Fetch} */
    this.fetch = options.fetch ?? ((input, init) => scope.fetch(input, init))
    /** @type {Link} */
    const link = {
      send: (frame) => { this.#socket?.send(frame) },
      open: () => this.#socket?.open === true,
      later: (delayMs, action) => { this.#socket?.later(delayMs, action) }
    }
    this.#subscriptions = new Subscriptions({ link, emit: (type, event) => { this.emit(type, event) } })
    this.#publishing = new Publishing({ link, store: options.outbox })
    this.#retry = new Retry({ backoff: options.backoff, wakeups: options.wakeups, connect: () => { void this.#connect() } })
    const auth = this.auth
    if (auth.kind === 'token') this.#tokenRefresh = new TokenRefresh(auth, (frame) => { link.send(frame) })
    // Kept publishes first, then the first socket (the caller's listeners are on by then).
    void Promise.resolve().then(() => options.outbox?.load()).then(
      (entries) => { if (entries !== undefined) this.#publishing.restore(entries) },
      () => { /* a store that cannot be read keeps nothing */ }
    ).then(() => this.#connect())
  }

  /** The connection's state now (the last `state` event's). */
  get state () {
    return this.#state
  }

  /** The topics subscribed to, in the order they were subscribed. */
  get topics () {
    return this.#subscriptions.topics
  }

  /** Publishes not acknowledged yet (restored from the outbox store included), in order. @returns {OutboxEntry[]} */
  pending () {
    return this.#publishing.pending()
  }

  /**
   * Subscribes to `topic`: its messages come as `message` events, each once, in id order, for
   * as long as it stays subscribed, across reconnections. The promise resolves once the
   * topic is caught up (live) and rejects if the server refuses it for good.
   * @param {string} topic
   * @param {{ since?: number | 'recent' }} [options] since: every entry after this id (told
   *   even if told before), or `recent`: the most recent history; by default where this
   *   client left off in the topic, or its most recent history the first time
   * @returns {Promise<void>}
   */
  subscribe (topic, { since } = {}) {
    if (!topicPattern.test(topic)) return handled(Promise.reject(new CanopyError('bad_topic', `not a topic name: ${topic}`, { topic })))
    if (this.#ended) return handled(Promise.reject(new CanopyError('closed', 'the client is closed', { topic })))
    return handled(this.#subscriptions.subscribe(topic, since))
  }

  /** Unsubscribes from `topic`; where it stands is kept, for a later subscribe to go on from. @param {string} topic */
  unsubscribe (topic) {
    this.#subscriptions.unsubscribe(topic)
  }

  /**
   * Publishes to `topic` (no subscription needed): sent now, or when a socket is open, and
   * again until the server acknowledges it. Resolves with the stored message's id and time;
   * rejects with a CanopyError when the server refuses it for good (or the client closes first).
   * @param {string} topic
   * @param {string | { text?: string, data?: unknown, replyTo?: number }} body the text, or the fields
   * @param {{ ref?: string }} [options] ref: this message's own ref (1–64 characters, never reused); a random one by default
   * @returns {Promise<{ id: number, at: string }>}
   */
  publish (topic, body, { ref = newRef() } = {}) {
    if (this.#ended) return handled(Promise.reject(new CanopyError('closed', 'the client is closed', { ref })))
    return handled(this.#publishing.publish(topic, body, ref))
  }

  /** Resolves once every publish made so far is answered (rejects if the client ends first). @returns {Promise<void>} */
  allAcked () {
    if (this.#publishing.size === 0) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!this.#ended && this.#publishing.size > 0) return
        for (const off of offs) off()
        if (this.#ended) reject(new CanopyError('closed', 'the client closed with publishes not acknowledged'))
        else resolve()
      }
      const offs = [this.on('ack', check), this.on('error', check), this.on('state', check)]
    })
  }

  /** Closes for good. Unacknowledged publishes reject with `closed` and stay in the outbox store, for a later client. */
  close () {
    const socket = this.#socket
    this.#socket = undefined
    socket?.close(1000, 'closed by the client')
    this.#end(1000, 'closed by the client', { byClient: true })
  }

  /** @param {Omit<StateChange, 'willReconnect'>} change */
  #setState (change) {
    this.#state = change.state
    this.emit('state', { ...change, willReconnect: change.state !== 'closed' })
  }

  async #connect () {
    if (this.#ended) return
    const attempt = ++this.#attempts
    if (attempt === 1) this.#setState({ state: 'connecting' })
    let opening
    try {
      opening = await credentials(this.auth, { url: this.url, fetch: this.fetch })
    } catch (error) {
      if (attempt !== this.#attempts || this.#ended) return
      if (error instanceof Unauthorized) this.#end(undefined, 'unauthorized')
      else this.#dropped({ reason: String(error) })
      return
    }
    if (attempt !== this.#attempts || this.#ended) return
    const urlTopic = this.topics[0] ?? noTopic
    try {
      const socket = new Socket({
        WebSocket: this.WebSocket,
        url: chatUrl(this.url, { ...opening.query, topic: urlTopic }),
        headers: opening.headers,
        listeners: {
          open: () => { if (socket === this.#socket) this.#opened(urlTopic, opening.token) },
          frame: (frame) => { if (socket === this.#socket) this.#frame(frame) },
          close: (close) => { if (socket === this.#socket) this.#dropped(close) }
        }
      })
      this.#socket = socket
    } catch (error) {
      this.#dropped({ reason: String(error) })
    }
  }

  /** @param {string} urlTopic @param {string} [token] */
  #opened (urlTopic, token) {
    this.#worked = false
    this.#setState({ state: 'open' })
    this.#subscriptions.opened(urlTopic)
    this.#publishing.flush()
    if (token !== undefined) this.#tokenRefresh?.start(token)
  }

  /**
   * The socket closed, or none could be opened (no code then).
   * @param {{ code?: number, reason: string, refusedStatus?: number }} close
   */
  #dropped ({ code, reason, refusedStatus }) {
    this.#socket = undefined
    this.#tokenRefresh?.stop()
    this.#subscriptions.dropped()
    this.#publishing.dropped()
    const after = afterClose({ code, refusedStatus, authKind: this.auth.kind })
    if (after.reconnect === 'never') {
      this.#end(code, after.reason ?? reason)
      return
    }
    const delayMs = this.#retry.schedule(after.reconnect)
    this.#setState(code === undefined ? { state: 'reconnecting', reason, delayMs } : { state: 'reconnecting', code, reason, delayMs })
  }

  /**
   * Closed for good: by the client, or by the server for credentials it no longer accepts.
   * @param {number | undefined} code
   * @param {string} reason
   * @param {{ byClient?: boolean }} [options]
   */
  #end (code, reason, { byClient = false } = {}) {
    if (this.#ended) return
    this.#ended = true
    this.#retry.stop()
    this.#tokenRefresh?.stop()
    const error = new CanopyError(byClient ? 'closed' : 'unauthorized', byClient ? 'the client is closed' : `the connection ended: ${reason}`)
    // The publishes of a user who is gone are not sent by whoever connects next.
    this.#publishing.end(error, { forget: !byClient })
    this.#subscriptions.end(error)
    this.#setState(code === undefined ? { state: 'closed', reason } : { state: 'closed', code, reason })
  }

  /** @param {{ type: string, [field: string]: any }} frame */
  #frame (frame) {
    if (!this.#worked) {
      this.#worked = true
      this.#retry.succeeded()
    }
    switch (frame.type) {
      case 'subscribed':
        this.#subscriptions.subscribed(frame)
        return
      case 'message':
      case 'update':
        if (this.#subscriptions.live(frame)) this.emit(frame.type, /** @type {any} */ (frame))
        return
      case 'ack':
        if (!this.#publishing.acked(/** @type {AckFrame} */ (frame))) return
        this.emit('ack', /** @type {AckFrame} */ (frame))
        this.#publishing.flush()
        return
      case 'error': {
        const error = /** @type {ErrorFrame} */ (frame)
        const told = this.#publishing.refused(error) || error.ref !== undefined || this.#subscriptions.refused(error)
        if (told) this.emit('error', error)
        return
      }
      case 'joined':
      case 'left':
      case 'typing':
        if (this.#subscriptions.wants(frame.topic)) this.emit(frame.type, /** @type {any} */ (frame))
        return
      case 'unsubscribed':
        if (/** @type {UnsubscribedFrame} */ (frame).reason === 'removed') this.#subscriptions.removed(frame.topic)
        this.emit('unsubscribed', /** @type {any} */ (frame))
        return
      default:
        this.emit('frame', frame)
    }
  }
}

/**
 * The promise, marked as handled: a caller that does not await it is told of a failure by
 * the `error` event and the promise alike, never by an unhandled rejection.
 * @template T
 * @param {Promise<T>} promise
 */
function handled (promise) {
  promise.catch(() => {})
  return promise
}
