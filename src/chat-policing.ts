import type { FastifyBaseLogger } from 'fastify'
import { LogSampler } from './log-sampler.js'
import { CloseCode, errorFrame, maxTopicsPerConnection, type ServerFrame } from './protocol.js'
import { RefusalPolicy } from './refusal-policy.js'
import { TokenBuckets } from './token-bucket.js'

/** What the policing sees of a connection. */
export interface PolicedConnection {
  readonly reqId: string
  readonly state: { user: { name: string } }
  send(frame: ServerFrame): void
  close(code: number, reason: string): void
}

export interface ChatPolicingOptions {
  /** PUBLISH_RATE and PUBLISH_BURST: the frame limits are never tighter than twice these. */
  publishRatePerSecond: number
  publishBurst: number
  log: FastifyBaseLogger
  now?: () => number
}

/**
 * Frames of any kind per second per connection, and the burst above it: subscribes read the
 * database too. Never tighter than twice the publish limits.
 */
const minFrameRatePerSecond = 50
const minFrameBurst = 100
/**
 * Publishes a client may have sent and not yet had acked (waits to send again included) and
 * still be polite after `rate_limited` (docs/protocol.md); public/connection.js keeps to it.
 * Frames without a ref (subscribes) in flight: at most one per topic of the connection.
 */
const maxPublishesInFlight = 32
/** A client's timer measures the wait from its own clock's last tick: a few ms early is in time. */
const pauseToleranceMs = 10
/** At most one log line of rate-limit refusals this often per instance, with the count since the last one. */
const refusalLogEveryMs = 1000

/**
 * The chat's rate policing: a token bucket of frames per connection, and the refusals it
 * and every other limit answer with `rate_limited` and a wait. A client that pauses for the
 * hint it was given is never closed; one that keeps sending without pausing is closed with
 * 1008 (src/refusal-policy.ts says how it is told apart).
 */
export class ChatPolicing<Connection extends PolicedConnection> {
  readonly frameRatePerSecond: number
  private readonly frameBuckets: TokenBuckets<Connection>
  private readonly refusals: RefusalPolicy<Connection>
  private readonly refusalLog: LogSampler
  private readonly log: FastifyBaseLogger

  constructor (options: ChatPolicingOptions) {
    const now = options.now ?? Date.now
    this.frameRatePerSecond = Math.max(minFrameRatePerSecond, 2 * options.publishRatePerSecond)
    this.frameBuckets = new TokenBuckets<Connection>(this.frameRatePerSecond, Math.max(minFrameBurst, 2 * options.publishBurst), now)
    this.refusals = new RefusalPolicy<Connection>({
      inFlight: { publish: maxPublishesInFlight, other: maxTopicsPerConnection },
      toleranceMs: pauseToleranceMs,
      now
    })
    this.refusalLog = new LogSampler({ everyMs: refusalLogEveryMs, now })
    this.log = options.log
  }

  /** One frame of the connection: 0 when within its frame rate, else the wait before one would be. */
  takeFrame (connection: Connection): number {
    return this.frameBuckets.take(connection)
  }

  /**
   * A frame refused for its rate, with the wait before one would be accepted: a publish
   * (with its `ref`) or another frame (a subscribe, with its `topic`).
   */
  refuse (connection: Connection, message: string, retryAfterMs: number, ref?: string, topic?: string): void {
    if (this.refusals.refuse(connection, ref === undefined ? 'other' : 'publish', retryAfterMs) === 'not_pausing') {
      connection.close(CloseCode.policy, 'kept sending without pausing after rate limiting')
      return
    }
    const unlogged = this.refusalLog.take()
    if (unlogged !== undefined) {
      this.log.info({ reqId: connection.reqId, user: connection.state.user.name, retryAfterMs, unlogged }, 'rate limited')
    }
    connection.send({ ...errorFrame('rate_limited', message, ref), ...(topic === undefined ? {} : { topic }), retryAfterMs })
  }

  /** The connection is gone. */
  forget (connection: Connection): void {
    this.frameBuckets.delete(connection)
    this.refusals.forget(connection)
  }

  stop (): void {
    this.frameBuckets.stop()
  }
}
