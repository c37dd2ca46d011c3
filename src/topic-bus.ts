import type { FastifyBaseLogger } from 'fastify'
import type { Database, Listener } from './db/client.js'
import { isUniqueViolation } from './errors.js'
import { readHistory, readRange, storeBatch, storeMessage, type NewMessage, type NotifyOptions, type PendingMessage, type StoredMessage } from './messages.js'
import { maxSinceMessages, type MessageFrame } from './protocol.js'

/** Whatever receives a topic's frames: a WebSocket connection, in practice. */
export interface Subscriber {
  send(frame: object | string | Buffer): void
}

interface Subscription {
  /** The highest message id this subscriber has (from history or live). */
  cursor: number
  /** Live messages held back while this subscriber's history is being read. */
  backlog: MessageFrame[] | undefined
}

interface TopicState {
  subscribers: Map<Subscriber, Subscription>
  /**
   * The highest id delivered here in order; undefined until the first subscriber's history
   * read tells where the topic stands.
   */
  lastId: number | undefined
  /** Messages that arrived ahead of a gap (or before lastId was known), waiting for it to fill. */
  pending: MessageFrame[]
  /** Known to be committed up to here (a NOTIFY without the messages): read up to it. */
  wanted: number
  /** The transport was down: read everything after lastId. */
  readToEnd: boolean
  filling: boolean
}

/** Retry a failed gap fill after this long (the database may be coming back). */
const fillRetryMs = 500
/** Rows read per query when filling a gap; a longer gap takes several. */
const fillPageSize = 1000
/** Publishes stored by one statement at most. */
const maxBatchMessages = 256

/** Events other than messages that every instance hears. */
export type BusEvent =
  | { kind: 'presence', topic: string, user: string, joined: boolean }
  | { kind: 'logout', sessionKey: string }

export class BusUnavailableError extends Error {
  override name = 'BusUnavailableError'
}

interface QueueEntry {
  message: PendingMessage
  committed: ((stored: StoredMessage) => void) | undefined
  resolve: (stored: StoredMessage) => void
  reject: (error: unknown) => void
}

/** The cross-instance part: a NOTIFY channel every instance LISTENs on. */
export type BusTransport = NotifyOptions

/**
 * The topic bus: publishes (store, then deliver) and subscriptions (history, then live).
 * The table is the truth: ids are gapless per topic, so a gap in what arrives here is seen
 * and filled from the table, and every subscriber gets each message once, in id order.
 *
 * Without a transport it is in-process; with one (a Postgres server), every publish also
 * NOTIFYs and what other instances commit arrives through `receive` like a local commit.
 */
export class TopicBus {
  private readonly topics = new Map<string, TopicState>()
  private readonly queue: QueueEntry[] = []
  private flushing = false
  private closed = false
  private listener: Listener | undefined
  private readonly eventHandlers: Array<(event: BusEvent) => void> = []
  private readonly readyWaiters: Array<() => void> = []

  /**
   * Without a transport the bus is in-process (one instance, e.g. on PGlite); with one,
   * every publish NOTIFYs in its transaction and `listen()` hears the other instances.
   */
  constructor (
    private readonly db: Database,
    private readonly log: FastifyBaseLogger,
    private readonly transport?: BusTransport
  ) {}

  /** Starts hearing the other instances: LISTEN, with reconnection and catch-up. */
  async listen (): Promise<void> {
    if (this.transport === undefined) return
    this.listener = await this.db.listen(this.transport.channel, {
      onNotify: (payload) => { this.hear(payload) },
      onDown: (error) => { this.log.warn({ err: error }, 'topic bus: LISTEN connection lost; reconnecting') },
      onUp: () => {
        this.log.info('topic bus: LISTEN connection back; catching up from the table')
        this.catchUp()
        for (const wake of this.readyWaiters.splice(0)) wake()
      }
    })
  }

  /** Whether this instance hears every other one (always, in-process). */
  get ready (): boolean {
    return this.transport === undefined || this.listener?.up === true
  }

  /** Resolves once the bus is ready (at once when it is). */
  async whenReady (): Promise<void> {
    if (this.ready) return
    await new Promise<void>((resolve) => { this.readyWaiters.push(resolve) })
  }

  /**
   * Stores a message and, once committed, delivers it to every subscriber on every
   * instance. `committed` runs between the two, so a publisher hears its ack before its own
   * message comes back. Publishes that arrive while a statement is running share the next
   * one (group commit).
   */
  async publish (input: NewMessage, committed?: (stored: StoredMessage) => void): Promise<StoredMessage> {
    if (!this.ready) throw new BusUnavailableError('the topic bus is reconnecting')
    return await new Promise((resolve, reject) => {
      this.queue.push({ message: { ...input, at: new Date() }, committed, resolve, reject })
      if (!this.flushing) void this.flush()
    })
  }

  private async flush (): Promise<void> {
    this.flushing = true
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, maxBatchMessages)
      try {
        const frames = await storeBatch(this.db, batch.map((entry) => entry.message), this.transport)
        batch.forEach((entry, i) => { this.settle(entry, { message: frames[i] as MessageFrame, duplicate: false }) })
      } catch (error) {
        if (!isUniqueViolation(error)) {
          for (const entry of batch) entry.reject(error)
          continue
        }
        // A ref used before: one by one, so that only that one answers with its first message.
        for (const entry of batch) {
          try {
            this.settle(entry, await storeMessage(this.db, entry.message, this.transport))
          } catch (error) {
            entry.reject(error)
          }
        }
      }
    }
    this.flushing = false
  }

  private settle (entry: QueueEntry, stored: StoredMessage): void {
    entry.committed?.(stored)
    if (!stored.duplicate) this.receive(stored.message)
    entry.resolve(stored)
  }

  /** Tells every instance, this one included (except one local subscriber), about an event. */
  announce (event: BusEvent, except?: Subscriber): void {
    this.dispatch(event, except)
    if (this.transport === undefined) return
    const payload = JSON.stringify({ i: this.transport.instanceId, e: event })
    this.db.notify(this.transport.channel, payload).catch((error: unknown) => {
      this.log.warn({ err: error, event: event.kind }, 'topic bus: announcing an event failed')
    })
  }

  onEvent (handler: (event: BusEvent) => void): void {
    this.eventHandlers.push(handler)
  }

  private dispatch (event: BusEvent, except?: Subscriber): void {
    if (event.kind === 'presence') {
      this.broadcast(event.topic, { type: event.joined ? 'joined' : 'left', topic: event.topic, user: event.user }, except)
    }
    for (const handler of this.eventHandlers) handler(event)
  }

  /** A NOTIFY from an instance: its messages, where to read them, or an event. */
  private hear (payload: string): void {
    let note: { i?: unknown, t?: unknown, f?: unknown, m?: unknown, n?: unknown, e?: unknown }
    try {
      note = JSON.parse(payload) as typeof note
    } catch {
      this.log.warn({ payload: payload.slice(0, 200) }, 'topic bus: a notification that is not JSON')
      return
    }
    if (note.i === this.transport?.instanceId) return
    if (typeof note.t === 'string' && typeof note.f === 'number') {
      const topic = note.t
      const first = note.f
      if (Array.isArray(note.m)) {
        (note.m as Array<[string, string, string]>).forEach(([author, text, at], i) => {
          this.receive({ type: 'message', topic, id: first + i, author, text, at })
        })
      } else if (typeof note.n === 'number') this.hint(topic, first + note.n - 1)
    } else if (typeof note.e === 'object' && note.e !== null) {
      this.dispatch(note.e as BusEvent)
    }
  }

  /**
   * Subscribes (or re-subscribes) and sends the `subscribed` frame with the history: the
   * `historyLimit` most recent messages, or every one after `since`. Live messages follow it,
   * each once.
   */
  async subscribe (topic: string, subscriber: Subscriber, options: { since?: number | undefined, historyLimit: number }): Promise<void> {
    let state = this.topics.get(topic)
    if (state === undefined) {
      state = { subscribers: new Map(), lastId: undefined, pending: [], wanted: 0, readToEnd: false, filling: false }
      this.topics.set(topic, state)
    }
    const existing = state.subscribers.get(subscriber)
    const subscription: Subscription = { cursor: existing?.cursor ?? 0, backlog: [] }
    state.subscribers.set(subscriber, subscription)
    let history
    try {
      history = await readHistory(this.db, topic, options.since === undefined
        ? { limit: options.historyLimit }
        : { since: options.since, maxSince: maxSinceMessages })
    } catch (error) {
      if (existing !== undefined && state.subscribers.get(subscriber) === subscription) {
        state.subscribers.set(subscriber, { cursor: existing.cursor, backlog: undefined })
        for (const frame of subscription.backlog ?? []) this.sendTo(subscriber, state.subscribers.get(subscriber), frame)
      } else this.unsubscribe(topic, subscriber)
      throw error
    }
    // Unsubscribed (or subscribed again) while reading: that later call decides.
    if (state.subscribers.get(subscriber) !== subscription) return

    subscriber.send(history.truncated
      ? { type: 'subscribed', topic, history: history.messages, truncated: true }
      : { type: 'subscribed', topic, history: history.messages })
    const last = history.messages.at(-1)?.id
    subscription.cursor = history.truncated && last !== undefined ? last : Math.max(history.lastId, options.since ?? 0)
    const backlog = subscription.backlog ?? []
    subscription.backlog = undefined
    for (const frame of backlog) this.sendTo(subscriber, subscription, frame)

    if (state.lastId === undefined) {
      state.lastId = history.lastId
      this.drain(topic, state)
    }
  }

  unsubscribe (topic: string, subscriber: Subscriber): boolean {
    const state = this.topics.get(topic)
    if (state === undefined || !state.subscribers.delete(subscriber)) return false
    if (state.subscribers.size === 0) this.topics.delete(topic)
    return true
  }

  /** Sends a notice (joined, left) to the topic's subscribers here, except one. */
  broadcast (topic: string, frame: object, except?: Subscriber): void {
    const state = this.topics.get(topic)
    if (state === undefined) return
    const data = Buffer.from(JSON.stringify(frame))
    for (const [subscriber, subscription] of state.subscribers) {
      if (subscriber !== except && subscription.backlog === undefined) subscriber.send(data)
    }
  }

  /** A message committed here or elsewhere: delivered in id order, once, gaps filled from the table. */
  receive (frame: MessageFrame): void {
    const state = this.topics.get(frame.topic)
    if (state === undefined) return
    if (state.lastId !== undefined && frame.id === state.lastId + 1 && !state.filling && state.pending.length === 0) {
      this.fanOut(state, frame)
      return
    }
    state.pending.push(frame)
    this.drain(frame.topic, state)
  }

  /** Something was committed up to `id` that did not come with its content: read it. */
  hint (topic: string, id: number): void {
    const state = this.topics.get(topic)
    if (state === undefined) return
    state.wanted = Math.max(state.wanted, id)
    this.drain(topic, state)
  }

  /** After an outage of the transport: read whatever every subscribed topic missed. */
  catchUp (): void {
    for (const [topic, state] of this.topics) {
      state.readToEnd = true
      this.drain(topic, state)
    }
  }

  async close (): Promise<void> {
    this.closed = true
    this.topics.clear()
    await this.listener?.close()
  }

  private fanOut (state: TopicState, frame: MessageFrame): void {
    state.lastId = frame.id
    if (state.subscribers.size === 0) return
    // Encoded once for every subscriber.
    const data = Buffer.from(JSON.stringify(frame))
    for (const [subscriber, subscription] of state.subscribers) {
      if (subscription.backlog !== undefined) subscription.backlog.push(frame)
      else if (frame.id > subscription.cursor) {
        subscription.cursor = frame.id
        subscriber.send(data)
      }
    }
  }

  private sendTo (subscriber: Subscriber, subscription: Subscription | undefined, frame: MessageFrame): void {
    if (subscription === undefined || frame.id <= subscription.cursor) return
    subscription.cursor = frame.id
    subscriber.send(frame)
  }

  /** Delivers what is pending in order; whatever is still missing is read from the table. */
  private drain (topic: string, state: TopicState): void {
    if (state.lastId === undefined || state.filling) return
    this.deliverPending(state)
    if (this.needsFill(state)) this.fill(topic, state)
  }

  private deliverPending (state: TopicState): void {
    if (state.lastId === undefined || state.pending.length === 0) return
    state.pending.sort((a, b) => a.id - b.id)
    let next = state.pending[0]
    while (next !== undefined && next.id <= state.lastId + 1) {
      state.pending.shift()
      if (next.id === state.lastId + 1) this.fanOut(state, next)
      next = state.pending[0]
    }
  }

  private needsFill (state: TopicState): boolean {
    return state.lastId !== undefined && (state.readToEnd || state.pending.length > 0 || state.wanted > state.lastId)
  }

  /**
   * Reads what is missing after lastId from the table, a page at a time, until nothing is.
   * Deferred by a turn of the event loop: a local publish that committed just before may
   * still be on its way here, and then no read is needed.
   */
  private fill (topic: string, state: TopicState): void {
    state.filling = true
    setImmediate(() => {
      state.filling = false
      if (this.closed || this.topics.get(topic) !== state || state.lastId === undefined) return
      this.deliverPending(state)
      if (!this.needsFill(state)) return
      const from = state.lastId
      const gapEnd = state.pending[0] === undefined ? state.wanted : state.pending[0].id - 1
      const upTo = state.readToEnd ? undefined : Math.max(state.wanted, gapEnd)
      const readToEnd = state.readToEnd
      state.readToEnd = false
      state.filling = true
      readRange(this.db, topic, from, upTo, fillPageSize).then((frames) => {
        state.filling = false
        if (this.topics.get(topic) !== state) return
        for (const frame of frames) if (frame.id === (state.lastId ?? 0) + 1) this.fanOut(state, frame)
        // A full page may not be the end of it.
        if (readToEnd && frames.length === fillPageSize) state.readToEnd = true
        this.drain(topic, state)
      }, (error: unknown) => {
        this.log.warn({ err: error, topic }, 'topic bus: reading missed messages failed; retrying')
        if (readToEnd) state.readToEnd = true
        setTimeout(() => {
          state.filling = false
          if (!this.closed && this.topics.get(topic) === state) this.drain(topic, state)
        }, fillRetryMs).unref()
      })
    })
  }
}
