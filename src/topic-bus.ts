import type { FastifyBaseLogger } from 'fastify'
import { decodeNotification, encodeEvent, senderPrefix, type BusEvent } from './bus-format.js'
import type { Database, Listener } from './db/database.js'
import { readHistory, readRange, withinReply, type History, type NotifyOptions } from './message-store.js'
import { maxSinceBytes, maxSinceMessages, type MessageFrame, type ServerFrame } from './protocol.js'

/** Whatever receives a topic's frames: a WebSocket connection, in practice. */
export interface Subscriber {
  /** A frame, or one already encoded once for many subscribers. */
  send(frame: ServerFrame | Buffer): void
  /** The answer to the subscriber's own subscribe, which never counts against it as slow. */
  reply(frame: ServerFrame): void
}

interface Subscription {
  /**
   * The message id up to which this subscriber has every message (from history or live).
   * Only the next one is sent live: a subscriber whose catch-up was truncated gets nothing
   * live until it has caught up with `since`, so it never gets a message twice or out of order.
   */
  cursor: number
  /** Live messages held back while this subscriber's history is being read. */
  backlog: MessageFrame[] | undefined
  /** Notices (joined, left) held back meanwhile: they follow the `subscribed` frame. */
  notices?: Buffer[]
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
  /**
   * The latest messages delivered here, oldest first, ending at lastId: every one of the
   * topic's last keepRecent (or all of them, in a younger topic). A new subscriber's history
   * comes from here when they are all it asks for. Undefined when not known to be complete.
   */
  recent: MessageFrame[] | undefined
  /** What `recent` holds, about (keptBytes). */
  recentBytes: number
}

export interface TopicBusOptions {
  /** Where the other instances listen; undefined when there are none. */
  transport?: NotifyOptions | undefined
  /** Told, per message committed on another instance, how long after its commit it reached the subscribers here. */
  busLag?: (seconds: number) => void
  /** Messages each topic with subscribers here keeps for the histories of new ones (HISTORY_LIMIT). */
  keepRecent?: number
}

export interface SubscribeOptions {
  since?: number | undefined
  historyLimit: number
  /** Other reads the `subscribed` frame needs, made while the history is read. */
  alongside?: Promise<unknown>
}

/** Retry a failed gap fill after this long (the database may be coming back). */
const fillRetryMs = 500
/** Rows read per query when filling a gap; a longer gap takes several. */
const fillPageSize = 1000
/** Gap fills reading at once, however many topics need one (after a LISTEN reconnect, all do). */
const maxConcurrentFills = 4
/**
 * Memory for recent messages over all topics at most; past it, topics read their histories.
 * There is no share per user: one user's sockets (MAX_CONNECTIONS_PER_USER × 100 topics,
 * 2000 at the defaults, each keeping HISTORY_LIMIT messages of up to MAX_MESSAGE_CHARS) can
 * hold all of it. What that costs is bounded all the same: memory stays within this; every
 * other topic's histories are read from the database as if nothing were kept (correct, and
 * paced by each user's history-read budget); and the messages are let go as soon as that
 * user's sockets leave the topics. A per-user share would need the bus to know whose
 * subscribe made a topic keep its messages.
 */
const maxRecentBytes = 64 * 1024 * 1024

/** About what a kept message takes in memory: its strings (two bytes a character at worst) and the object. */
function keptBytes (frame: MessageFrame): number {
  return 2 * (frame.topic.length + frame.author.length + frame.text.length + frame.at.length) + 100
}

export class BusUnavailableError extends Error {
  override name = 'BusUnavailableError'
}

/**
 * The topic bus: subscriptions (history, then live) and ordered delivery. The table is the
 * truth: ids are gapless per topic, so a gap in what arrives here is seen and filled from
 * the table, and every subscriber gets each message once, in id order. Every frame a
 * subscriber gets from the bus goes through `deliver`.
 *
 * Without a transport it is in-process; with one (a Postgres server), `listen` hears what
 * other instances commit (src/bus-format.ts), and it arrives through `receive` like a
 * local commit.
 */
export class TopicBus {
  private readonly topics = new Map<string, TopicState>()
  private closed = false
  private listener: Listener | undefined
  private readonly eventHandlers: Array<(event: BusEvent) => void> = []
  private readonly readyWaiters: Array<() => void> = []
  private fillsReading = 0
  /** Fills waiting for one of the maxConcurrentFills places. */
  private readonly fillsWaiting: Array<() => void> = []
  /** Frames handed to subscribers so far: a plain count, which the metrics read when scraped. */
  private delivered = 0
  /** How this instance's own notifications start (src/bus-format.ts). */
  private readonly ownPrefix: string | undefined
  readonly transport: NotifyOptions | undefined
  private readonly busLag: (seconds: number) => void
  private readonly keepRecent: number
  /** What every topic's `recent` holds, about. */
  private recentBytes = 0

  constructor (private readonly db: Database, private readonly log: FastifyBaseLogger, options: TopicBusOptions = {}) {
    this.transport = options.transport
    this.busLag = options.busLag ?? (() => {})
    this.keepRecent = options.keepRecent ?? 0
    this.ownPrefix = this.transport === undefined ? undefined : senderPrefix(this.transport.instanceId)
  }

  /** Frames handed to subscribers so far, of every kind. */
  get deliveries (): number {
    return this.delivered
  }

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

  /** Tells every other instance about an event (this one handles its own). */
  announce (event: BusEvent): void {
    if (this.transport === undefined) return
    this.db.notify(this.transport.channel, encodeEvent(this.transport.instanceId, event)).catch((error: unknown) => {
      this.log.warn({ err: error, event: event.kind }, 'topic bus: announcing an event failed')
    })
  }

  /** Events announced by other instances. */
  onEvent (handler: (event: BusEvent) => void): void {
    this.eventHandlers.push(handler)
  }

  /** A NOTIFY from an instance: its messages, where to read them, or an event. */
  private hear (payload: string): void {
    if (this.ownPrefix !== undefined && payload.startsWith(this.ownPrefix)) return
    const note = decodeNotification(payload)
    if (note === undefined) {
      this.log.warn({ payload: payload.slice(0, 200) }, 'topic bus: a notification that is not ours')
      return
    }
    switch (note.kind) {
      case 'messages': {
        note.messages.forEach(({ author, text, at }, i) => {
          this.receive({ type: 'message', topic: note.topic, id: note.firstId + i, author, text, at })
        })
        if (note.committedAtMs === undefined || !this.topics.has(note.topic)) return
        // The database's clock against this one: a clock behind it would make a lag below zero.
        const lagSeconds = Math.max(0, Date.now() - note.committedAtMs) / 1000
        for (let i = 0; i < note.messages.length; i++) this.busLag(lagSeconds)
        return
      }
      case 'hint':
        this.hint(note.topic, note.lastId)
        return
      case 'event':
        for (const handler of this.eventHandlers) handler(note.event)
    }
  }

  /**
   * Subscribes (or re-subscribes) and sends the frame `subscribed` makes of the history: the
   * `historyLimit` most recent messages, or every one after `since`. Live messages follow it,
   * each once.
   */
  async subscribe (topic: string, subscriber: Subscriber, options: SubscribeOptions, subscribed: (history: History) => ServerFrame): Promise<void> {
    let state = this.topics.get(topic)
    if (state === undefined) {
      state = { subscribers: new Map(), lastId: undefined, pending: [], wanted: 0, readToEnd: false, filling: false, recent: undefined, recentBytes: 0 }
      this.topics.set(topic, state)
    }
    const existing = state.subscribers.get(subscriber)
    const subscription: Subscription = { cursor: existing?.cursor ?? 0, backlog: [] }
    state.subscribers.set(subscriber, subscription)
    let history
    try {
      const read = this.recentHistory(state, options) ?? readHistory(this.db, topic, options.since === undefined
        ? { limit: options.historyLimit }
        : { since: options.since, maxSince: maxSinceMessages, maxSinceBytes });
      [history] = await Promise.all([read, options.alongside])
    } catch (error) {
      if (existing !== undefined && state.subscribers.get(subscriber) === subscription) {
        state.subscribers.set(subscriber, { cursor: existing.cursor, backlog: undefined })
        for (const frame of subscription.backlog ?? []) this.sendTo(subscriber, state.subscribers.get(subscriber), frame)
        for (const notice of subscription.notices ?? []) this.deliver(subscriber, notice)
      } else if (state.subscribers.get(subscriber) === subscription) {
        // Unless a later subscribe (after an unsubscribe) replaced this one meanwhile: it stays.
        this.unsubscribe(topic, subscriber)
      }
      throw error
    }
    // Unsubscribed (or subscribed again) while reading: that later call decides.
    if (state.subscribers.get(subscriber) !== subscription) return

    this.deliver(subscriber, subscribed(history), true)
    const last = history.messages.at(-1)?.id
    subscription.cursor = history.truncated && last !== undefined ? last : Math.max(history.lastId, options.since ?? 0)
    const backlog = subscription.backlog ?? []
    subscription.backlog = undefined
    for (const frame of backlog) this.sendTo(subscriber, subscription, frame)
    // Who came or went while the history was read: `present` may have been read before it.
    for (const notice of subscription.notices ?? []) this.deliver(subscriber, notice)
    subscription.notices = undefined

    if (state.lastId === undefined) {
      state.lastId = history.lastId
      this.keepFrom(state, history, options)
      this.drain(topic, state)
    }
  }

  /**
   * The history from the messages kept here, when they hold all of it: the bus hears every
   * other instance, so nothing committed up to lastId is missing. Undefined means: read it.
   */
  private recentHistory (state: TopicState, options: SubscribeOptions): History | undefined {
    const { recent, lastId } = state
    if (recent === undefined || lastId === undefined || !this.ready) return undefined
    const fromStart = recent.length === lastId
    if (options.since === undefined) {
      if (options.historyLimit > recent.length && !fromStart) return undefined
      return { messages: recent.slice(recent.length - Math.min(options.historyLimit, recent.length)), lastId, truncated: false }
    }
    const oldestKept = recent[0]?.id ?? lastId + 1
    if (options.since > lastId || (options.since < oldestKept - 1 && !fromStart)) return undefined
    const missed = recent.slice(Math.max(0, options.since - oldestKept + 1))
    const messages = withinReply(missed, maxSinceMessages, maxSinceBytes)
    return { messages, lastId, truncated: messages.length < missed.length }
  }

  /** After a topic's first history read here: its latest messages, if the read holds them all. */
  private keepFrom (state: TopicState, history: History, options: SubscribeOptions): void {
    if (this.keepRecent === 0 || options.since !== undefined) return
    const { messages, lastId } = history
    const complete = (messages.at(-1)?.id ?? 0) === lastId && (messages.length >= this.keepRecent || messages.length === lastId)
    if (!complete) return
    const recent = messages.slice(Math.max(0, messages.length - this.keepRecent))
    const bytes = recent.reduce((sum, frame) => sum + keptBytes(frame), 0)
    if (this.recentBytes + bytes > maxRecentBytes) return
    state.recent = recent
    state.recentBytes = bytes
    this.recentBytes += bytes
  }

  /** The topic's messages are no longer kept: its histories are read again. */
  private forgetRecent (state: TopicState): void {
    this.recentBytes -= state.recentBytes
    state.recent = undefined
    state.recentBytes = 0
  }

  /** Whether the subscriber is subscribed to the topic (or being subscribed). */
  has (topic: string, subscriber: Subscriber): boolean {
    return this.topics.get(topic)?.subscribers.has(subscriber) === true
  }

  unsubscribe (topic: string, subscriber: Subscriber): boolean {
    const state = this.topics.get(topic)
    if (state === undefined || !state.subscribers.delete(subscriber)) return false
    if (state.subscribers.size === 0) {
      this.topics.delete(topic)
      this.forgetRecent(state)
    }
    return true
  }

  /** Sends a notice (joined, left) to the topic's subscribers here, except one. */
  broadcast (topic: string, frame: ServerFrame, except?: Subscriber): void {
    const state = this.topics.get(topic)
    if (state === undefined) return
    const data = Buffer.from(JSON.stringify(frame))
    for (const [subscriber, subscription] of state.subscribers) {
      if (subscriber === except) continue
      if (subscription.backlog === undefined) this.deliver(subscriber, data)
      else (subscription.notices ??= []).push(data)
    }
  }

  /** The one place where the bus hands a frame to a subscriber. */
  private deliver (subscriber: Subscriber, frame: ServerFrame | Buffer, asReply = false): void {
    this.delivered++
    if (asReply && !Buffer.isBuffer(frame)) subscriber.reply(frame)
    else subscriber.send(frame)
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
    this.recentBytes = 0
    await this.listener?.close()
  }

  private fanOut (state: TopicState, frame: MessageFrame): void {
    state.lastId = frame.id
    if (state.recent !== undefined) {
      const bytes = keptBytes(frame)
      state.recent.push(frame)
      state.recentBytes += bytes
      this.recentBytes += bytes
      if (state.recent.length > this.keepRecent) {
        const gone = keptBytes(state.recent.shift() as MessageFrame)
        state.recentBytes -= gone
        this.recentBytes -= gone
      }
      if (this.recentBytes > maxRecentBytes) this.forgetRecent(state)
    }
    if (state.subscribers.size === 0) return
    // Encoded once for every subscriber.
    const data = Buffer.from(JSON.stringify(frame))
    for (const [subscriber, subscription] of state.subscribers) {
      if (subscription.backlog !== undefined) subscription.backlog.push(frame)
      else if (frame.id === subscription.cursor + 1) {
        subscription.cursor = frame.id
        this.deliver(subscriber, data)
      }
    }
  }

  private sendTo (subscriber: Subscriber, subscription: Subscription | undefined, frame: MessageFrame): void {
    if (subscription === undefined || frame.id !== subscription.cursor + 1) return
    subscription.cursor = frame.id
    this.deliver(subscriber, frame)
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
      this.inFillPlace(async () => await readRange(this.db, topic, from, upTo, fillPageSize)).then((frames) => {
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

  /** Runs a gap read in one of the maxConcurrentFills places, once one is free. */
  private async inFillPlace<T> (read: () => Promise<T>): Promise<T> {
    if (this.fillsReading < maxConcurrentFills) this.fillsReading++
    else await new Promise<void>((resolve) => { this.fillsWaiting.push(resolve) })
    try {
      return await read()
    } finally {
      // The place goes to the next fill waiting, or is free again.
      const next = this.fillsWaiting.shift()
      if (next !== undefined) next()
      else this.fillsReading--
    }
  }
}
