import type { FastifyBaseLogger } from 'fastify'
import type { Database } from './db/client.js'
import { readHistory, readRange, storeMessage, type NewMessage, type StoredMessage } from './messages.js'
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
  filling: boolean
}

/** Retry a failed gap fill after this long (the database may be coming back). */
const fillRetryMs = 500

/**
 * The topic bus: publishes (store, then deliver) and subscriptions (history, then live).
 * The table is the truth: ids are gapless per topic, so a gap in what arrives here is seen
 * and filled from the table, and every subscriber gets each message once, in id order.
 *
 * This is the in-process bus; a cross-instance transport only adds `receive` calls for
 * messages committed elsewhere.
 */
export class TopicBus {
  private readonly topics = new Map<string, TopicState>()
  private closed = false

  constructor (private readonly db: Database, private readonly log: FastifyBaseLogger) {}

  /**
   * Stores a message and, once committed, delivers it to every subscriber. `committed` runs
   * between the two, so a publisher hears its ack before its own message comes back.
   */
  async publish (input: NewMessage, committed?: (stored: StoredMessage) => void): Promise<StoredMessage> {
    const stored = await storeMessage(this.db, input)
    committed?.(stored)
    if (!stored.duplicate) this.receive(stored.message)
    return stored
  }

  /**
   * Subscribes (or re-subscribes) and sends the `subscribed` frame with the history: the
   * `historyLimit` most recent messages, or every one after `since`. Live messages follow it,
   * each once.
   */
  async subscribe (topic: string, subscriber: Subscriber, options: { since?: number | undefined, historyLimit: number }): Promise<void> {
    let state = this.topics.get(topic)
    if (state === undefined) {
      state = { subscribers: new Map(), lastId: undefined, pending: [], filling: false }
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
    if (state?.lastId === undefined || id <= state.lastId) return
    this.fill(topic, state, id)
  }

  /** After an outage of the transport: read whatever every subscribed topic missed. */
  catchUp (): void {
    for (const [topic, state] of this.topics) {
      if (state.lastId !== undefined) this.fill(topic, state, undefined)
    }
  }

  close (): void {
    this.closed = true
    this.topics.clear()
  }

  get topicCount (): number {
    return this.topics.size
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

  /** Delivers what is pending in order; a gap before the next one is read from the table. */
  private drain (topic: string, state: TopicState): void {
    if (state.lastId === undefined || state.filling) return
    state.pending.sort((a, b) => a.id - b.id)
    let next = state.pending[0]
    while (next !== undefined && next.id <= state.lastId + 1) {
      state.pending.shift()
      if (next.id === state.lastId + 1) this.fanOut(state, next)
      next = state.pending[0]
    }
    if (next !== undefined) this.fill(topic, state, next.id - 1)
  }

  /**
   * Reads (lastId, toId] from the table. Deferred by a turn of the event loop: a local
   * publish that committed just before may still be on its way here.
   */
  private fill (topic: string, state: TopicState, toId: number | undefined): void {
    if (state.filling) return
    state.filling = true
    setImmediate(() => {
      if (this.closed || this.topics.get(topic) !== state || state.lastId === undefined) return
      // Whatever arrived meanwhile may already close the gap.
      state.filling = false
      if (toId !== undefined) {
        state.pending.sort((a, b) => a.id - b.id)
        while (state.pending[0] !== undefined && state.pending[0].id === state.lastId + 1) this.fanOut(state, state.pending.shift() as MessageFrame)
        if (toId <= state.lastId) { this.drain(topic, state); return }
      }
      state.filling = true
      const from = state.lastId
      readRange(this.db, topic, from, toId).then((frames) => {
        state.filling = false
        if (this.topics.get(topic) !== state) return
        for (const frame of frames) if (state.lastId !== undefined && frame.id === state.lastId + 1) this.fanOut(state, frame)
        this.drain(topic, state)
      }, (error: unknown) => {
        this.log.warn({ err: error, topic }, 'reading missed messages failed; retrying')
        setTimeout(() => {
          state.filling = false
          if (!this.closed && this.topics.get(topic) === state) this.fill(topic, state, toId)
        }, fillRetryMs).unref()
      })
    })
  }
}
