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
  /** Whose subscription it is: of a private topic, only its members get anything. */
  userId: number | undefined
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
  /** Set once the topic is known to be public (which it stays): its frames go to every subscriber without asking. */
  public: boolean
  /**
   * What waits while the topic, or a private topic's members, are read (the access module
   * forgot them, or never knew): released, to those who may have it, once they are known.
   */
  held: Held | undefined
}

interface Held {
  messages: MessageFrame[]
  notices: Array<{ data: Buffer, except: Subscriber | undefined }>
}

/** Who gets a topic's frames: every subscriber, or only the members of a private topic. */
type Reach = 'all' | 'members'

/**
 * Who may receive what (src/access.ts): the bus asks it before every delivery of a topic not
 * known to be public, so nothing of a private topic reaches anyone but its members.
 */
export interface DeliveryFilter {
  /**
   * What is known here, without reading: public, private with its members known, or
   * undefined (the bus holds the topic's frames and reads it first, with `learn`).
   */
  visibility(topic: string): 'public' | 'private' | undefined
  /** Whether the user may have the frames of a topic `visibility` knows. */
  mayReceive(userId: number, topic: string): boolean
  /** Reads the topic: what it is, now known to `visibility` (undefined: no such topic). Rejects when the database cannot say. */
  learn(topic: string): Promise<'public' | 'private' | undefined>
  /** The topic has subscribers here now, or no longer: what `visibility` knows of it is kept meanwhile. */
  served(topic: string): void
  unserved(topic: string): void
}

/** A subscribe refused as it ends: the topic is private and the user is not (or no longer) a member. */
export class AccessRefusedError extends Error {
  override name = 'AccessRefusedError'
  constructor (readonly topic: string) {
    super(`not a member of ${topic}`)
  }
}

/** Retry a read of what a topic is (or of the hooks before a catch-up) after this long. */
const retryMs = 500

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
  private filter: DeliveryFilter | undefined
  private readonly catchUpHooks: Array<() => Promise<void>> = []
  /** Counts the LISTEN connection's returns: a catch-up a later one overtook leaves the reading to it. */
  private catchUps = 0
  private closed = false
  readonly transport: NotifyOptions | undefined

  constructor (private readonly db: Database, private readonly log: FastifyBaseLogger, options: TopicBusOptions = {}) {
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

  /** Who may receive what (the access module): from now on every delivery of a topic not known to be public asks it. */
  filterDeliveries (filter: DeliveryFilter): void {
    this.filter = filter
    for (const topic of this.topics.keys()) filter.served(topic)
  }

  /**
   * Runs before every catch-up after the LISTEN connection comes back, and the catch-up waits
   * for it (retried until it succeeds): membership changes may have been missed, so the
   * members of private topics are read again first (plugins/chat-endpoint.ts).
   */
  beforeCatchUp (hook: () => Promise<void>): void {
    this.catchUpHooks.push(hook)
  }

  /**
   * Subscribes (or re-subscribes) and sends the frame `subscribed` makes of the history: the
   * `historyLimit` most recent messages, or every one after `since`. Live messages follow it,
   * each once.
   */
  async subscribe (topic: string, subscriber: Subscriber, options: SubscribeOptions, subscribed: (history: History) => ServerFrame): Promise<void> {
    let feed = this.topics.get(topic)
    if (feed === undefined) {
      feed = { subscribers: new Map(), lastId: undefined, pending: [], wanted: 0, readToEnd: false, filling: false, kept: undefined, public: false, held: undefined }
      this.topics.set(topic, feed)
      this.filter?.served(topic)
    }
    const existing = feed.subscribers.get(subscriber)
    const position: FeedPosition = { userId: options.userId, cursor: existing?.cursor ?? 0, backlog: [] }
    feed.subscribers.set(subscriber, position)
    let history
    let reach: Reach | undefined
    try {
      const read = this.keptHistory(feed, options) ?? readHistory(this.db, topic, options.since === undefined
        ? { limit: options.historyLimit }
        : { since: options.since, maxSince: maxSinceMessages, maxSinceBytes })
      // What the topic is, read alongside when not known here (a topic this subscribe just made).
      const learning = this.reach(topic, feed) === undefined ? this.learn(topic) : undefined;
      [history] = await Promise.all([read, options.alongside, learning])
      // Known now, right before the `subscribed` frame goes (no wait between them).
      while ((reach = this.reach(topic, feed)) === undefined) {
        if (await this.learn(topic) !== 'private') {
          reach = 'all'
          break
        }
      }
    } catch (error) {
      if (existing !== undefined && feed.subscribers.get(subscriber) === position) {
        feed.subscribers.set(subscriber, { userId: existing.userId, cursor: existing.cursor, backlog: undefined })
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
    // Removed from the private topic while subscribing (the chat unsubscribes a removed
    // member's subscriptions; this one may not have counted yet).
    if (reach === 'members' && !this.mayReceive(topic, position)) {
      this.unsubscribe(topic, subscriber)
      throw new AccessRefusedError(topic)
    }

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
      feed.held = undefined
      this.filter?.unserved(topic)
    }
    return true
  }

  /** Sends a notice (joined, left) to the topic's subscribers here (of a private topic, its members), except one. */
  broadcast (topic: string, frame: ServerFrame, except?: Subscriber): void {
    const feed = this.topics.get(topic)
    if (feed === undefined) return
    this.spreadNotice(topic, feed, Buffer.from(JSON.stringify(frame)), except)
  }

  private spreadNotice (topic: string, feed: TopicFeed, data: Buffer, except: Subscriber | undefined): void {
    if (feed.held !== undefined) {
      feed.held.notices.push({ data, except })
      return
    }
    const reach = this.reach(topic, feed)
    if (reach === undefined) {
      this.hold(topic, feed).notices.push({ data, except })
      return
    }
    for (const [subscriber, position] of feed.subscribers) {
      if (subscriber === except || (reach === 'members' && !this.mayReceive(topic, position))) continue
      if (position.backlog === undefined) this.deliver(subscriber, data)
      else (position.notices ??= []).push(data)
    }
  }

  /**
   * Who gets the topic's frames, from what is known here without reading: every subscriber
   * (a public topic, or no filter), its members (a private topic whose members are known),
   * or undefined: read it first.
   */
  private reach (topic: string, feed: TopicFeed): Reach | undefined {
    if (feed.public || this.filter === undefined) return 'all'
    const visibility = this.filter.visibility(topic)
    if (visibility === 'public') {
      // A topic's visibility never changes: ask no more.
      feed.public = true
      return 'all'
    }
    return visibility === 'private' ? 'members' : undefined
  }

  /** Whether a subscriber of a topic whose reach is 'members' may have its frames. */
  private mayReceive (topic: string, position: FeedPosition): boolean {
    return position.userId !== undefined && this.filter?.mayReceive(position.userId, topic) === true
  }

  private async learn (topic: string): Promise<'public' | 'private' | undefined> {
    return this.filter === undefined ? 'public' : await this.filter.learn(topic)
  }

  /** Holds the topic's frames while what it is is read; released once it is known. */
  private hold (topic: string, feed: TopicFeed): Held {
    if (feed.held !== undefined) return feed.held
    const held: Held = { messages: [], notices: [] }
    feed.held = held
    const retry = (): void => {
      setTimeout(() => { if (!this.closed && feed.held === held && this.isCurrent(topic, feed)) learnThenRelease() }, retryMs).unref()
    }
    const learnThenRelease = (): void => {
      this.learn(topic).then((learned) => {
        if (feed.held !== held || !this.isCurrent(topic, feed)) return
        let reach = this.reach(topic, feed)
        if (reach === undefined) {
          // Private, and changes to its members overtook every read: read again.
          if (learned === 'private') return retry()
          // No such topic: nothing of it can be private.
          reach = 'all'
        }
        feed.held = undefined
        held.messages.sort((a, b) => a.id - b.id)
        for (const frame of held.messages) this.spread(frame.topic, feed, frame, reach)
        for (const { data, except } of held.notices) this.spreadNotice(topic, feed, data, except)
      }, (error: unknown) => {
        this.log.warn({ err: error, topic }, 'topic bus: reading who may receive a topic failed; retrying')
        retry()
      })
    }
    learnThenRelease()
    return held
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

  /**
   * After an outage of the transport: the hooks first (beforeCatchUp: membership read
   * again), then read whatever every subscribed topic missed.
   */
  catchUp (): void {
    const round = ++this.catchUps
    void this.runCatchUpHooks(round).then(() => {
      if (this.closed || round !== this.catchUps) return
      for (const [topic, feed] of this.topics) this.order.readToEnd(topic, feed)
    })
  }

  /** Runs the hooks, again after a failure, until they succeed or a later catch-up takes over. */
  private async runCatchUpHooks (round: number): Promise<void> {
    for (;;) {
      try {
        for (const hook of this.catchUpHooks) await hook()
        return
      } catch (error) {
        this.log.warn({ err: error }, 'topic bus: the work before a catch-up failed; retrying')
        await new Promise((resolve) => { setTimeout(resolve, retryMs).unref() })
        if (this.closed || round !== this.catchUps) return
      }
    }
  }

  async close (): Promise<void> {
    this.closed = true
    this.order.close()
    this.topics.clear()
    this.recent.clear()
    await this.link.close()
  }

  /** @internal whether `feed` is still the topic's: a gap fill that ends after its last subscriber left drops what it read (src/message-order.ts). */
  isCurrent (topic: string, feed: TopicFeed): boolean {
    return this.topics.get(topic) === feed
  }

  /**
   * @internal the topic's next message, in id order (src/message-order.ts): kept, then sent to
   * each subscriber it continues (of a private topic, each member).
   */
  fanOut (feed: TopicFeed, frame: MessageFrame): void {
    if (feed.kept !== undefined && !this.recent.add(feed.kept, frame)) feed.kept = undefined
    if (feed.subscribers.size === 0) return
    // One look per message, none per subscriber, for a topic known to be public.
    const reach = feed.public ? 'all' : this.reach(frame.topic, feed)
    this.spread(frame.topic, feed, frame, reach)
  }

  /** Sends a message to each subscriber it continues, of those `reach` says; held while that is not known. */
  private spread (topic: string, feed: TopicFeed, frame: MessageFrame, reach: Reach | undefined): void {
    if (feed.held !== undefined || reach === undefined) {
      this.hold(topic, feed).messages.push(frame)
      return
    }
    // Encoded once for every subscriber.
    const data = Buffer.from(JSON.stringify(frame))
    for (const [subscriber, position] of feed.subscribers) {
      if (reach === 'members' && !this.mayReceive(topic, position)) continue
      if (position.backlog !== undefined) position.backlog.push(frame)
      else if (frame.id === position.cursor + 1) {
        position.cursor = frame.id
        this.deliver(subscriber, data)
      }
    }
  }

  /** A message held back for one subscriber while its history was read: sent if it continues it, and it may have it. */
  private sendTo (subscriber: Subscriber, position: FeedPosition | undefined, frame: MessageFrame): void {
    if (position === undefined || frame.id !== position.cursor + 1) return
    const feed = this.topics.get(frame.topic)
    if (feed === undefined) return
    const reach = this.reach(frame.topic, feed)
    if (reach === undefined) {
      // Not known at this moment: it goes with the others held, to this subscriber if it still continues it.
      this.hold(frame.topic, feed).messages.push(frame)
      return
    }
    if (reach === 'members' && !this.mayReceive(frame.topic, position)) return
    position.cursor = frame.id
    this.deliver(subscriber, frame)
  }
}
