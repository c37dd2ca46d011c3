import type { FastifyBaseLogger } from 'fastify'
import type { BusEvent } from './bus-format.js'
import type { Database } from './db/database.js'
import { InstanceLink, type InstancesListener } from './instance-link.js'
import { MessageOrder, type InOrderReceiver, type TopicSequence } from './message-order.js'
import { readHistory, type History, type NotifyOptions } from './message-store.js'
import { maxSinceBytes, maxSinceMessages, type MessageFrame, type ServerFrame } from './protocol.js'
import { RecentMessages, type HistoryRequest, type KeptMessages } from './recent-messages.js'

/** Whatever receives a topic's frames: a WebSocket connection, in practice. */
export interface Subscriber {
  /** A frame, or one already encoded once for many subscribers. */
  send(frame: ServerFrame | Buffer): void
  /** The answer to the subscriber's own subscribe, which never counts against it as slow. */
  reply(frame: ServerFrame): void
}

/** Where one subscriber stands in a topic's feed. */
interface FeedPosition {
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

/** A topic with subscribers here: who they are and where each stands, its order, its kept messages. */
interface TopicFeed extends TopicSequence {
  subscribers: Map<Subscriber, FeedPosition>
  /** Its latest messages (src/recent-messages.ts); undefined when they are not kept. */
  kept: KeptMessages | undefined
}

export interface TopicBusOptions {
  /** Where the other instances listen; undefined when there are none. */
  transport?: NotifyOptions | undefined
  /** Told, per message committed on another instance, how long after its commit it reached the subscribers here. */
  busLag?: (seconds: number) => void
  /** Messages each topic with subscribers here keeps for the histories of new ones (HISTORY_LIMIT). */
  keepRecent?: number
  /** Memory for kept messages over all topics (src/recent-messages.ts has the default). */
  maxRecentBytes?: number
  /** Memory for the messages kept for one user's subscribes (src/recent-messages.ts has the default). */
  maxRecentBytesPerUser?: number
}

export interface SubscribeOptions extends HistoryRequest {
  /** Other reads the `subscribed` frame needs, made while the history is read. */
  alongside?: Promise<unknown>
  /** Whose subscribe it is: kept messages the subscribe makes count against this user's share. */
  userId?: number | undefined
}

export class BusUnavailableError extends Error {
  override name = 'BusUnavailableError'
}

/**
 * The topic bus: subscriptions (history, then live) and delivery. Each committed message,
 * whether committed here or heard from another instance (src/instance-link.ts), arrives
 * through `deliverCommitted`, is put in id order with gaps filled from the table
 * (src/message-order.ts), kept among the topic's recent messages (src/recent-messages.ts)
 * and fanned out, so every subscriber gets each message once, in id order. Every frame a
 * subscriber gets from the bus goes through `deliver`.
 */
export class TopicBus implements InOrderReceiver<TopicFeed>, InstancesListener {
  private readonly topics = new Map<string, TopicFeed>()
  private readonly link: InstanceLink
  private readonly order: MessageOrder<TopicFeed>
  private readonly recent: RecentMessages
  /** Frames handed to subscribers so far: a plain count, which the metrics read when scraped. */
  private delivered = 0
  readonly transport: NotifyOptions | undefined

  constructor (private readonly db: Database, log: FastifyBaseLogger, options: TopicBusOptions = {}) {
    this.transport = options.transport
    this.link = new InstanceLink({ db, log, transport: options.transport, busLag: options.busLag ?? (() => {}), heard: this })
    this.order = new MessageOrder({ db, log, receiver: this })
    this.recent = new RecentMessages({ perTopic: options.keepRecent ?? 0, maxBytes: options.maxRecentBytes, maxBytesPerUser: options.maxRecentBytesPerUser })
  }

  /** Frames handed to subscribers so far, of every kind. */
  get deliveries (): number {
    return this.delivered
  }

  /** What the kept messages take, about: over all topics, or for one user's. */
  recentBytes (userId?: number): number {
    return userId === undefined ? this.recent.bytes : this.recent.bytesOf(userId)
  }

  /** Starts hearing the other instances: LISTEN, with reconnection and catch-up. */
  async listen (): Promise<void> {
    await this.link.listen()
  }

  /** Whether this instance hears every other one (always, in-process). */
  get ready (): boolean {
    return this.link.ready
  }

  /** Resolves once the bus is ready (at once when it is). */
  async whenReady (): Promise<void> {
    await this.link.whenReady()
  }

  /** Tells every other instance about an event (this one handles its own). */
  tellOtherInstances (event: BusEvent): void {
    this.link.tellOtherInstances(event)
  }

  /** Events told by other instances. */
  onEvent (handler: (event: BusEvent) => void): void {
    this.link.onEvent(handler)
  }

  /**
   * Subscribes (or re-subscribes) and sends the frame `subscribed` makes of the history: the
   * `historyLimit` most recent messages, or every one after `since`. Live messages follow it,
   * each once.
   */
  async subscribe (topic: string, subscriber: Subscriber, options: SubscribeOptions, subscribed: (history: History) => ServerFrame): Promise<void> {
    let feed = this.topics.get(topic)
    if (feed === undefined) {
      feed = { subscribers: new Map(), lastId: undefined, pending: [], wanted: 0, readToEnd: false, filling: false, kept: undefined }
      this.topics.set(topic, feed)
    }
    const existing = feed.subscribers.get(subscriber)
    const position: FeedPosition = { cursor: existing?.cursor ?? 0, backlog: [] }
    feed.subscribers.set(subscriber, position)
    let history
    try {
      const read = this.keptHistory(feed, options) ?? readHistory(this.db, topic, options.since === undefined
        ? { limit: options.historyLimit }
        : { since: options.since, maxSince: maxSinceMessages, maxSinceBytes });
      [history] = await Promise.all([read, options.alongside])
    } catch (error) {
      if (existing !== undefined && feed.subscribers.get(subscriber) === position) {
        feed.subscribers.set(subscriber, { cursor: existing.cursor, backlog: undefined })
        for (const frame of position.backlog ?? []) this.sendTo(subscriber, feed.subscribers.get(subscriber), frame)
        for (const notice of position.notices ?? []) this.deliver(subscriber, notice)
      } else if (feed.subscribers.get(subscriber) === position) {
        // Unless a later subscribe (after an unsubscribe) replaced this one meanwhile: it stays.
        this.unsubscribe(topic, subscriber)
      }
      throw error
    }
    // Unsubscribed (or subscribed again) while reading: that later call decides.
    if (feed.subscribers.get(subscriber) !== position) return

    this.deliver(subscriber, subscribed(history), true)
    const last = history.messages.at(-1)?.id
    position.cursor = history.truncated && last !== undefined ? last : Math.max(history.lastId, options.since ?? 0)
    const backlog = position.backlog ?? []
    position.backlog = undefined
    for (const frame of backlog) this.sendTo(subscriber, position, frame)
    // Who came or went while the history was read: `present` may have been read before it.
    for (const notice of position.notices ?? []) this.deliver(subscriber, notice)
    position.notices = undefined

    if (feed.lastId === undefined) {
      // The topic's first history read here: it tells where the topic stands, and may hold
      // all of its latest messages.
      if (options.since === undefined) feed.kept = this.recent.keep(history, options.userId)
      this.order.startAt(topic, feed, history.lastId)
    }
  }

  /**
   * The history from the messages kept here, when they hold all of it: the bus hears every
   * other instance, so nothing committed up to lastId is missing. Undefined means: read it.
   */
  private keptHistory (feed: TopicFeed, request: HistoryRequest): History | undefined {
    const { kept, lastId } = feed
    if (kept === undefined || lastId === undefined || !this.ready) return undefined
    return this.recent.historyFrom(kept, lastId, request)
  }

  /** Whether the subscriber is subscribed to the topic (or being subscribed). */
  has (topic: string, subscriber: Subscriber): boolean {
    return this.topics.get(topic)?.subscribers.has(subscriber) === true
  }

  /** Whether the topic has subscribers here. */
  serves (topic: string): boolean {
    return this.topics.has(topic)
  }

  unsubscribe (topic: string, subscriber: Subscriber): boolean {
    const feed = this.topics.get(topic)
    if (feed === undefined || !feed.subscribers.delete(subscriber)) return false
    if (feed.subscribers.size === 0) {
      this.topics.delete(topic)
      if (feed.kept !== undefined) this.recent.forget(feed.kept)
      feed.kept = undefined
    }
    return true
  }

  /** Sends a notice (joined, left) to the topic's subscribers here, except one. */
  broadcast (topic: string, frame: ServerFrame, except?: Subscriber): void {
    const feed = this.topics.get(topic)
    if (feed === undefined) return
    const data = Buffer.from(JSON.stringify(frame))
    for (const [subscriber, position] of feed.subscribers) {
      if (subscriber === except) continue
      if (position.backlog === undefined) this.deliver(subscriber, data)
      else (position.notices ??= []).push(data)
    }
  }

  /** The one place where the bus hands a frame to a subscriber. */
  private deliver (subscriber: Subscriber, frame: ServerFrame | Buffer, asReply = false): void {
    this.delivered++
    if (asReply && !Buffer.isBuffer(frame)) subscriber.reply(frame)
    else subscriber.send(frame)
  }

  /** A message committed here or elsewhere: delivered in id order, once, gaps filled from the table. */
  deliverCommitted (frame: MessageFrame): void {
    const feed = this.topics.get(frame.topic)
    if (feed !== undefined) this.order.arrive(frame.topic, feed, frame)
  }

  /** Something was committed up to `id` that did not come with its content: read it. */
  hint (topic: string, id: number): void {
    const feed = this.topics.get(topic)
    if (feed !== undefined) this.order.wantUpTo(topic, feed, id)
  }

  /** After an outage of the transport: read whatever every subscribed topic missed. */
  catchUp (): void {
    for (const [topic, feed] of this.topics) this.order.readToEnd(topic, feed)
  }

  async close (): Promise<void> {
    this.order.close()
    this.topics.clear()
    this.recent.clear()
    await this.link.close()
  }

  /** @internal whether `feed` is still the topic's: a gap fill that ends after its last subscriber left drops what it read (src/message-order.ts). */
  isCurrent (topic: string, feed: TopicFeed): boolean {
    return this.topics.get(topic) === feed
  }

  /** @internal the topic's next message, in id order (src/message-order.ts): kept, then sent to each subscriber it continues. */
  fanOut (feed: TopicFeed, frame: MessageFrame): void {
    if (feed.kept !== undefined && !this.recent.add(feed.kept, frame)) feed.kept = undefined
    if (feed.subscribers.size === 0) return
    // Encoded once for every subscriber.
    const data = Buffer.from(JSON.stringify(frame))
    for (const [subscriber, position] of feed.subscribers) {
      if (position.backlog !== undefined) position.backlog.push(frame)
      else if (frame.id === position.cursor + 1) {
        position.cursor = frame.id
        this.deliver(subscriber, data)
      }
    }
  }

  private sendTo (subscriber: Subscriber, position: FeedPosition | undefined, frame: MessageFrame): void {
    if (position === undefined || frame.id !== position.cursor + 1) return
    position.cursor = frame.id
    this.deliver(subscriber, frame)
  }
}
