import { getTableName } from 'drizzle-orm'
import { AttemptLimiter } from './attempt-limiter.js'
import type { Queryable } from './db/database.js'
import { topics } from './db/schema.js'

const T = getTableName(topics)
const t = { name: topics.name.name }

const hourMs = 3_600_000
/** Topics an instance remembers as existing, at most: past it, the oldest remembered is forgotten. */
const defaultMaxKnownTopics = 50_000

/** Admitted (the topic exists, or the user may bring it into being), refused with the wait, or the database could not say. */
export type CreationOutcome = 'ok' | { retryAfterMs: number } | 'unavailable'

export interface TopicCreationsOptions {
  db: Queryable
  /** New topics one user may bring into being per hour, across all instances (TOPIC_CREATE_RATE). */
  perHour: number
  maxKnownTopics?: number
  now?: () => number
}

/**
 * TOPIC_CREATE_RATE: the topics one user brings into being (a first publish or subscribe, or
 * one created on purpose: POST /api/topics, a new direct-message topic) are counted per hour
 * in Postgres, on the attempt counters every instance shares (src/attempt-limiter.ts), so N
 * instances allow no more than one.
 *
 * A publish or subscribe to a topic this instance knows exists costs nothing: topics are
 * never deleted, so a topic seen to exist (found, made here, or stored to by the batch
 * statement) is remembered, up to maxKnownTopics. Only a topic not remembered is looked up,
 * and only one that does not exist is counted.
 */
export class TopicCreations {
  private readonly db: Queryable
  private readonly limiter: AttemptLimiter
  private readonly perHour: number
  private readonly maxKnownTopics: number
  private readonly now: () => number
  /** In insertion order: the first is the oldest remembered. */
  private readonly known = new Set<string>()
  /**
   * New topics admitted for a publish whose batch has not committed yet: the publishes that
   * follow it there are not counted again. (A subscribe makes the row, so it waits for `known`.)
   */
  private readonly admitted = new Set<string>()
  /** One admission at a time per user and topic: a burst of publishes to a new topic counts once. */
  private readonly admitting = new Map<string, Promise<CreationOutcome>>()
  /** Users refused until then: their next new topics are refused without counting again. */
  private readonly refusedUntilMs = new Map<number, number>()

  constructor (options: TopicCreationsOptions) {
    this.db = options.db
    this.limiter = new AttemptLimiter(options.db)
    this.perHour = options.perHour
    this.maxKnownTopics = options.maxKnownTopics ?? defaultMaxKnownTopics
    this.now = options.now ?? Date.now
  }

  /**
   * Whether the user may publish or subscribe to `topic`: at once when it is known to exist,
   * else after looking it up and, when it does not exist, counting its creation against the
   * user's limit. With `make` (a subscribe), an admitted new topic's row is made here; a
   * publish's row is made by its batch statement.
   */
  async admit (userId: number, topic: string, options: { make: boolean }): Promise<CreationOutcome> {
    if (this.known.has(topic) || (!options.make && this.admitted.has(topic))) return 'ok'
    const key = `${userId}\n${topic}`
    let admission = this.admitting.get(key)
    if (admission === undefined) {
      admission = this.lookUpAndCount(userId, topic, options.make).finally(() => { this.admitting.delete(key) })
      this.admitting.set(key, admission)
    }
    const outcome = await admission
    // A subscribe that rode on a publish's admission makes the row the publish has not made yet.
    if (outcome === 'ok' && options.make && !this.known.has(topic)) return await this.make(topic)
    return outcome
  }

  /**
   * Counts one new topic against the user's limit, for a topic created on purpose (POST
   * /api/topics, POST /api/dm): admitted, or refused with the wait. The caller makes the topic, then
   * `remember`s it.
   */
  async countCreation (userId: number): Promise<CreationOutcome> {
    try {
      return await this.count(userId)
    } catch {
      return 'unavailable'
    }
  }

  /** The topic exists: its batch statement committed, or it was found. */
  remember (topic: string): void {
    if (this.known.has(topic)) return
    this.admitted.delete(topic)
    addBounded(this.known, topic, this.maxKnownTopics)
  }

  private async lookUpAndCount (userId: number, topic: string, make: boolean): Promise<CreationOutcome> {
    try {
      const found = await this.db.query(`SELECT 1 FROM ${T} WHERE ${t.name} = $1`, [topic], 'canopy_topic_exists')
      if (found.length > 0) {
        this.remember(topic)
        return 'ok'
      }
      const counted = await this.count(userId)
      if (counted !== 'ok') return counted
      if (make) return await this.make(topic)
      addBounded(this.admitted, topic, this.maxKnownTopics)
      return 'ok'
    } catch {
      return 'unavailable'
    }
  }

  /** Counts a new topic of the user's, unless the user is refused already (then from memory). Throws when the database cannot count. */
  private async count (userId: number): Promise<'ok' | { retryAfterMs: number }> {
    const now = this.now()
    const refusedUntilMs = this.refusedUntilMs.get(userId)
    if (refusedUntilMs !== undefined) {
      if (refusedUntilMs > now) return { retryAfterMs: Math.ceil(refusedUntilMs - now) }
      this.refusedUntilMs.delete(userId)
    }
    const retryAfterMs = await this.limiter.count([{ key: `topic-create\n${userId}`, max: this.perHour, windowMs: hourMs }])
    if (retryAfterMs === undefined) return 'ok'
    this.forgetEndedRefusals(now)
    this.refusedUntilMs.set(userId, now + retryAfterMs)
    return { retryAfterMs }
  }

  /** Makes the topic's row (a subscribe brings it into being); it may have been made meanwhile. */
  private async make (topic: string): Promise<CreationOutcome> {
    try {
      await this.db.query(`INSERT INTO ${T} (${t.name}) VALUES ($1) ON CONFLICT DO NOTHING`, [topic], 'canopy_make_topic')
    } catch {
      return 'unavailable'
    }
    this.remember(topic)
    return 'ok'
  }

  private forgetEndedRefusals (now: number): void {
    if (this.refusedUntilMs.size < this.maxKnownTopics) return
    for (const [userId, untilMs] of this.refusedUntilMs) if (untilMs <= now) this.refusedUntilMs.delete(userId)
  }
}

/** Adds to a set kept in insertion order, forgetting the oldest entry once it holds `max`. */
function addBounded (set: Set<string>, value: string, max: number): void {
  if (set.size >= max) {
    const oldest = set.values().next()
    if (oldest.done !== true) set.delete(oldest.value)
  }
  set.add(value)
}
