import fp from 'fastify-plugin'
import { LogSampler } from '../src/log-sampler.js'
import { PublishLimiter } from '../src/publish-limiter.js'
import { PublishQueue, PublishRefusedError, PublishUnavailableError } from '../src/publish-queue.js'
import { BusUnavailableError } from '../src/topic-bus.js'
import { TopicCreations } from '../src/topic-creations.js'
import type { ErrorCode, MessageFrame } from '../src/protocol.js'
import type { User } from '../src/users.js'

export type PublishOutcome =
  | { ok: true, message: MessageFrame, duplicate: boolean }
  | { ok: false, code: ErrorCode, message: string, retryAfterMs?: number }

/** A publish that passed the rate limit and waits, in order, for its commit. */
export interface QueuedPublish {
  outcome: Promise<PublishOutcome>
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The one publish path of WebSocket and HTTP alike, for a text already validated: the
     * user's rate limit, then queue for storing and delivery. Resolves as soon as the message
     * holds its place in the queue (so a connection may go on to its next frame and its
     * messages keep their order), or with the refusal. `committed` runs after the commit,
     * before delivery. Never throws.
     */
    queuePublish(user: User, topic: string, text: string, ref: string | undefined, committed?: (message: MessageFrame) => void): Promise<QueuedPublish | PublishOutcome & { ok: false }>
    /** queuePublish, awaited to the end. */
    publish(user: User, topic: string, text: string, ref: string | undefined): Promise<PublishOutcome>
    /** Publishes not yet answered, so shutdown can wait for them. */
    publishesInFlight: ReadonlySet<Promise<PublishOutcome>>
    /** TOPIC_CREATE_RATE: whether a user may subscribe to a topic that may not exist yet (src/topic-creations.ts). */
    topicCreations: Pick<TopicCreations, 'admit'>
  }
}

const unavailable = { ok: false, code: 'unavailable', message: 'the message could not be stored; resend it with the same ref' } as const
/**
 * While the topic bus reconnects or the database is away, every publish fails the same way:
 * one warning this often per instance, with how many failed since the one before.
 */
const failureLogEveryMs = 10_000

export default fp(async function publish (fastify) {
  const { publishRatePerSecond, publishBurst, topicCreatesPerHour } = fastify.config
  const perUser = new PublishLimiter(fastify.db, publishRatePerSecond, publishBurst)
  const creations = new TopicCreations({ db: fastify.db, perHour: topicCreatesPerHour })
  const inFlight = new Set<Promise<PublishOutcome>>()
  const { topicBus: bus, metrics } = fastify
  const { publishQueueWaitMs, statementTimeoutMs } = fastify.config
  const queue = new PublishQueue(fastify.db, bus.transport, (message) => { bus.receive(message) },
    (seconds, batchSize) => { metrics.committed(seconds, batchSize) },
    // The queue gives a statement a second beyond the server's own bound, as the pool does.
    { maxQueueWaitMs: publishQueueWaitMs, maxStatementWaitMs: statementTimeoutMs === undefined ? undefined : statementTimeoutMs + 1000 })
  fastify.addReadinessCheck('commits', async () => {
    if (queue.stalled) throw new Error('commits stall: a publish statement is running too long or ran out of time')
  })
  fastify.addHook('onClose', async () => { perUser.stop(); queue.stop() })
  const busDownLog = new LogSampler({ everyMs: failureLogEveryMs })
  const failureLog = new LogSampler({ everyMs: failureLogEveryMs })

  const store = async (user: User, topic: string, text: string, ref: string | undefined, committed?: (message: MessageFrame) => void): Promise<PublishOutcome> => {
    try {
      if (!bus.ready) throw new BusUnavailableError('the topic bus is reconnecting')
      const stored = await queue.add({ topic, authorId: user.id, author: user.name, text, ref },
        committed === undefined ? undefined : (stored) => { committed(stored.message) })
      creations.remember(topic)
      return { ok: true, message: stored.message, duplicate: stored.duplicate }
    } catch (error) {
      if (error instanceof PublishRefusedError) {
        fastify.log.info({ topic, reason: error.message }, 'publish refused by the database')
        return { ok: false, code: 'bad_request', message: error.message }
      }
      if (error instanceof PublishUnavailableError) return { ok: false, code: 'unavailable', message: `${error.message}; resend it with the same ref` }
      if (error instanceof BusUnavailableError) {
        // A known state with its own log lines (the bus's reconnects): no stack to show.
        const unlogged = busDownLog.take()
        if (unlogged !== undefined) fastify.log.warn({ topic, reason: error.message, unlogged }, 'publishes refused: the topic bus is reconnecting')
        return unavailable
      }
      const unlogged = failureLog.take()
      if (unlogged !== undefined) fastify.log.warn({ err: error, topic, unlogged }, 'publish failed')
      return unavailable
    }
  }

  /** Each publish attempt that got this far, counted once with how it ended. */
  const counted = <Outcome extends PublishOutcome>(outcome: Outcome): Outcome => {
    metrics.published(outcome.ok ? 'acked' : outcome.code)
    return outcome
  }

  fastify.decorate('publishesInFlight', inFlight)
  fastify.decorate('topicCreations', creations)
  fastify.decorate('queuePublish', async (user: User, topic: string, text: string, ref: string | undefined, committed?: (message: MessageFrame) => void) => {
    // Refused before anything is stored.
    const allowed = await perUser.take(user.id)
    if (allowed === 'unavailable') return counted(unavailable)
    if (allowed !== 'ok') {
      const { retryAfterMs } = allowed
      return counted({ ok: false, code: 'rate_limited', message: `over ${publishRatePerSecond} messages per second; nothing was stored; resend in ${retryAfterMs} ms`, retryAfterMs } as const)
    }
    const creation = await creations.admit(user.id, topic, { make: false })
    if (creation === 'unavailable') return counted(unavailable)
    if (creation !== 'ok') {
      const { retryAfterMs } = creation
      return counted({ ok: false, code: 'rate_limited', message: `over ${topicCreatesPerHour} new topics per hour; ${topic} is not one yet and nothing was stored; resend in ${retryAfterMs} ms`, retryAfterMs } as const)
    }
    // store() joins the publish queue synchronously, before this function returns.
    const outcome = store(user, topic, text, ref, committed).then(counted)
    inFlight.add(outcome)
    void outcome.finally(() => inFlight.delete(outcome))
    return { outcome }
  })
  fastify.decorate('publish', async (user: User, topic: string, text: string, ref: string | undefined) => {
    const queued = await fastify.queuePublish(user, topic, text, ref)
    return 'outcome' in queued ? await queued.outcome : queued
  })
}, { name: 'publish', fastify: '5.x', dependencies: ['config', 'database', 'health', 'metrics', 'topic-bus'] })
