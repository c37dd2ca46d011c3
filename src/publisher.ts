import type { FastifyBaseLogger } from 'fastify'
import type { Access } from './access.js'
import type { Queryable } from './db/database.js'
import { LogSampler } from './log-sampler.js'
import type { NotifyOptions } from './message-store.js'
import type { ErrorCode, MessageFrame } from './protocol.js'
import { PublishLimiter } from './publish-limiter.js'
import { PublishQueue, PublishRefusedError, PublishUnavailableError } from './publish-queue.js'
import { BusUnavailableError } from './topic-bus.js'
import { TopicCreations } from './topic-creations.js'
import type { User } from './users.js'

/** A publish that will not be stored, in the words of an `error` frame (`topic` with `forbidden` and `bad_topic`). */
export interface PublishRefusal { ok: false, code: ErrorCode, message: string, retryAfterMs?: number, topic?: string }

export type PublishOutcome =
  | { ok: true, message: MessageFrame, duplicate: boolean }
  | PublishRefusal

/**
 * What `queue` resolves to: the message holds its place in the queue (`outcome` resolves
 * after its commit, or with why it failed), or it was refused before anything was stored.
 */
export type QueuedPublish =
  | { queued: true, outcome: Promise<PublishOutcome> }
  | { queued: false, refusal: PublishRefusal }

export interface PublisherOptions {
  db: Queryable
  log: FastifyBaseLogger
  /** Set where other instances listen: every batch then NOTIFYs them. */
  notify: NotifyOptions | undefined
  /** Whether the topic bus hears every other instance: publishes are refused while it does not. */
  busReady: () => boolean
  /** Who may publish where (src/access.ts): asked before anything is counted or stored. */
  access: Pick<Access, 'decide'>
  /** Each message committed here, for delivery: the topic bus's `deliverCommitted`. */
  onCommitted: (message: MessageFrame) => void
  /** Each publish attempt that got as far as the rate limit, with how it ended (the metrics). */
  onPublished?: (result: 'acked' | ErrorCode) => void
  /** Every statement, committed or failed: its seconds and its publishes (the metrics). */
  onStatement?: (seconds: number, batchSize: number) => void
  /** PUBLISH_RATE and PUBLISH_BURST, per user across instances. */
  publishRatePerSecond: number
  publishBurst: number
  /** TOPIC_CREATE_RATE. */
  topicCreatesPerHour: number
  /** Bounds of the publish queue (src/publish-queue.ts); its own defaults when undefined. */
  maxQueueWaitMs?: number | undefined
  maxStatementWaitMs?: number | undefined
}

const unavailable = { ok: false, code: 'unavailable', message: 'the message could not be stored; resend it with the same ref' } as const
/**
 * While the topic bus reconnects or the database is away, every publish fails the same way:
 * one warning this often per instance, with how many failed since the one before.
 */
const failureLogEveryMs = 10_000

/**
 * The one publish path of WebSocket and HTTP alike, for a text and data already validated (checkPublish): the
 * user's rate limit, whether the user may publish in the topic (src/access.ts), and
 * TOPIC_CREATE_RATE, then the publish queue, whose commits go on to the topic bus. Never
 * throws: every way a publish ends is a PublishOutcome.
 */
export class Publisher {
  /** TOPIC_CREATE_RATE, which subscribes ask too. */
  readonly topicCreations: TopicCreations
  private readonly perUser: PublishLimiter
  private readonly commits: PublishQueue
  private readonly inFlight = new Set<Promise<PublishOutcome>>()
  private readonly busDownLog = new LogSampler({ everyMs: failureLogEveryMs })
  private readonly failureLog = new LogSampler({ everyMs: failureLogEveryMs })
  private readonly onPublished: (result: 'acked' | ErrorCode) => void

  constructor (private readonly options: PublisherOptions) {
    const { db } = options
    this.perUser = new PublishLimiter(db, options.publishRatePerSecond, options.publishBurst)
    this.topicCreations = new TopicCreations({ db, perHour: options.topicCreatesPerHour })
    this.commits = new PublishQueue({
      db,
      notify: options.notify,
      onCommitted: options.onCommitted,
      onStatement: options.onStatement,
      maxQueueWaitMs: options.maxQueueWaitMs,
      maxStatementWaitMs: options.maxStatementWaitMs
    })
    this.onPublished = options.onPublished ?? (() => {})
  }

  /**
   * Queues a publish: resolves as soon as the message holds its place in the queue (so a
   * connection may go on to its next frame and its messages keep their order), or with the
   * refusal. The message reaches the topic bus only after every reaction to `outcome` in the
   * turn of its commit has run: an ack sent on it goes out before the message itself.
   */
  async queue (user: User, topic: string, text: string | undefined, ref: string | undefined, data?: unknown): Promise<QueuedPublish> {
    const { publishRatePerSecond, topicCreatesPerHour } = this.options
    // Refused before anything is stored.
    const allowed = await this.perUser.take(user.id)
    if (allowed === 'unavailable') return this.refused(unavailable)
    if (allowed !== 'ok') {
      const { retryAfterMs } = allowed
      return this.refused({ ok: false, code: 'rate_limited', message: `over ${publishRatePerSecond} messages per second; nothing was stored; resend in ${retryAfterMs} ms`, retryAfterMs })
    }
    // Who may publish here, before a new topic is counted: no read for a topic known here.
    const refusal = await this.mayPublish(user, topic)
    if (refusal !== undefined) return this.refused(refusal)
    const creation = await this.topicCreations.admit(user.id, topic, { make: false })
    if (creation === 'unavailable') return this.refused(unavailable)
    if (creation !== 'ok') {
      const { retryAfterMs } = creation
      return this.refused({ ok: false, code: 'rate_limited', message: `over ${topicCreatesPerHour} new topics per hour; ${topic} is not one yet and nothing was stored; resend in ${retryAfterMs} ms`, retryAfterMs })
    }
    // store() joins the publish queue synchronously, before this function returns.
    const outcome = this.store(user, topic, text ?? '', ref, data).then((stored) => this.counted(stored))
    this.inFlight.add(outcome)
    void outcome.finally(() => this.inFlight.delete(outcome))
    return { queued: true, outcome }
  }

  /** `queue`, awaited to the end. */
  async publish (user: User, topic: string, text: string | undefined, ref: string | undefined, data?: unknown): Promise<PublishOutcome> {
    const queued = await this.queue(user, topic, text, ref, data)
    return queued.queued ? await queued.outcome : queued.refusal
  }

  /** Publishes queued and not yet answered. */
  get inFlightCount (): number {
    return this.inFlight.size
  }

  /** Resolves once every publish queued so far is answered and its message handed to the bus (shutdown waits for it). */
  async allAnswered (): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight])
    // The answered messages reach the bus on the tick after their commit: let it come.
    await new Promise((resolve) => { setImmediate(resolve) })
  }

  /** Whether commits stall: a statement has run too long, or the last one ran out of time. */
  get stalled (): boolean {
    return this.commits.stalled
  }

  stop (): void {
    this.perUser.stop()
    this.commits.stop()
  }

  /** Undefined when the user may publish in the topic, else the refusal. */
  private async mayPublish (user: User, topic: string): Promise<PublishRefusal | undefined> {
    let decision
    try {
      decision = await this.options.access.decide(user.id, topic, 'publish')
    } catch (error) {
      const unlogged = this.failureLog.take()
      if (unlogged !== undefined) this.options.log.warn({ err: error, topic, unlogged }, 'publish refused: who may publish could not be read')
      return unavailable
    }
    if (decision.allowed) return undefined
    return decision.code === 'bad_topic'
      ? { ok: false, code: 'bad_topic', message: `there is no direct-message topic ${topic}; start one with POST /api/dm; nothing was stored`, topic }
      : { ok: false, code: 'forbidden', message: `${topic} is private and you are not a member; nothing was stored`, topic }
  }

  private refused (refusal: PublishRefusal): QueuedPublish {
    return { queued: false, refusal: this.counted(refusal) }
  }

  /** Each publish attempt that got this far, counted once with how it ended. */
  private counted<Outcome extends PublishOutcome> (outcome: Outcome): Outcome {
    this.onPublished(outcome.ok ? 'acked' : outcome.code)
    return outcome
  }

  private async store (user: User, topic: string, text: string, ref: string | undefined, data: unknown): Promise<PublishOutcome> {
    const { log } = this.options
    try {
      if (!this.options.busReady()) throw new BusUnavailableError('the topic bus is reconnecting')
      const stored = await this.commits.add({ topic, authorId: user.id, author: user.name, text, ref, data, bot: user.bot === true })
      this.topicCreations.remember(topic)
      return { ok: true, message: stored.message, duplicate: stored.duplicate }
    } catch (error) {
      if (error instanceof PublishRefusedError) {
        log.info({ topic, reason: error.message }, 'publish refused by the database')
        return { ok: false, code: 'bad_request', message: error.message }
      }
      if (error instanceof PublishUnavailableError) return { ok: false, code: 'unavailable', message: `${error.message}; resend it with the same ref` }
      if (error instanceof BusUnavailableError) {
        // A known state with its own log lines (the bus's reconnects): no stack to show.
        const unlogged = this.busDownLog.take()
        if (unlogged !== undefined) log.warn({ topic, reason: error.message, unlogged }, 'publishes refused: the topic bus is reconnecting')
        return unavailable
      }
      const unlogged = this.failureLog.take()
      if (unlogged !== undefined) log.warn({ err: error, topic, unlogged }, 'publish failed')
      return unavailable
    }
  }
}
