import { isRefusedData, isUniqueViolation, sqlState } from './errors.js'
import type { Queryable } from './db/database.js'
import { TimeoutError, withTimeout } from './timeout.js'
import { findByRefs, storeBatch, type NewMessage, type NotifyOptions, type PendingMessage, type StoredMessage } from './message-store.js'
import type { MessageFrame } from './protocol.js'

/** Publishes stored by one statement at most. */
const maxBatchMessages = 256
/** Publishes waiting for a statement at most; more are refused at once. */
export const maxQueuedPublishes = 10_000
/**
 * A publish still waiting for its statement after this long is answered `unavailable` and
 * never sent: with the statement's own time limit (src/db/postgres.ts) every publish is
 * answered within 5 s, even when the database stalls.
 */
export const maxQueueWaitMs = 1000
/**
 * A statement not answered by then (a hung server: the server's own time limit answers
 * sooner) is given up: its publishes are answered `unavailable` and may resend by ref.
 */
export const maxStatementWaitMs = 4000
/** A statement running longer than this means commits stall (/readyz says 503). */
const stallAfterMs = 1000
const sweepEveryMs = 250

/** The publish was not stored and will not be: the client may resend it with its ref. */
export class PublishUnavailableError extends Error {
  override name = 'PublishUnavailableError'
}

/** The database refused this message itself (not the batch it was in): resending will not help. */
export class PublishRefusedError extends Error {
  override name = 'PublishRefusedError'
}

interface QueueEntry {
  message: PendingMessage
  enqueuedMs: number
  resolve: (stored: StoredMessage) => void
  reject: (error: unknown) => void
  /** Later publishes of the same author and ref in the same batch: answered like this one. */
  repeats?: QueueEntry[]
}

export interface PublishQueueOptions {
  db: Queryable
  /** Set where other instances listen: every batch then NOTIFYs them in its statement. */
  notify?: NotifyOptions | undefined
  /** Each message committed here (a duplicate is not), for delivery: the topic bus's `deliverCommitted`. */
  onCommitted: (message: MessageFrame) => void
  /** Every statement, committed or failed: its seconds and its publishes (the metrics). */
  onStatement?: (seconds: number, batchSize: number) => void
  /** Other bounds than the 5 s guarantee's (a test's, where the bound is not what it tests). */
  maxQueueWaitMs?: number | undefined
  maxStatementWaitMs?: number | undefined
}

/**
 * The publish queue and its group commit: publishes that arrive while a statement runs
 * share the next one, so one transaction and one commit serve them all. `add` resolves after
 * the commit; the batch's messages go to `onCommitted` once every reaction to those answers
 * has run (a publisher's ack), so a publisher hears its ack before its own message comes back.
 *
 * One publisher's bad luck stays its own: a ref used before is answered with its first
 * message while the rest of the batch is stored together, and a message the database
 * refuses is found by splitting the batch and fails alone.
 */
export class PublishQueue {
  private readonly queue: QueueEntry[] = []
  private flushing = false
  /** When the statement in flight was sent; undefined when none is. */
  private statementSentMs: number | undefined
  /** The last statement ran out of time and none has succeeded since. */
  private timedOut = false
  private readonly sweepTimer: NodeJS.Timeout
  private readonly db: Queryable
  private readonly notify: NotifyOptions | undefined
  private readonly onCommitted: (message: MessageFrame) => void
  private readonly onStatement: (seconds: number, batchSize: number) => void
  private readonly maxQueueWaitMs: number
  private readonly maxStatementWaitMs: number
  /** Messages answered and not yet handed to onCommitted. */
  private readonly answered: MessageFrame[] = []
  private handOnScheduled = false
  /**
   * Runs on the next tick, which comes after the promise reactions of this turn: every
   * answer's awaiting code (the ack) has run by then. One callback for the whole batch.
   */
  private readonly handOn = (): void => {
    this.handOnScheduled = false
    for (const message of this.answered.splice(0)) this.onCommitted(message)
  }

  constructor (options: PublishQueueOptions) {
    this.db = options.db
    this.notify = options.notify
    this.onCommitted = options.onCommitted
    this.onStatement = options.onStatement ?? (() => {})
    this.maxQueueWaitMs = options.maxQueueWaitMs ?? maxQueueWaitMs
    this.maxStatementWaitMs = options.maxStatementWaitMs ?? maxStatementWaitMs
    this.sweepTimer = setInterval(() => { this.sweep() }, sweepEveryMs).unref()
  }

  /** Resolves once the message is committed (or found stored before, by its ref); rejects when it will not be. */
  async add (input: NewMessage): Promise<StoredMessage> {
    if (this.queue.length >= maxQueuedPublishes) {
      throw new PublishUnavailableError(`over ${maxQueuedPublishes} messages are waiting to be stored; resend later`)
    }
    return await new Promise((resolve, reject) => {
      this.queue.push({ message: { ...input, at: new Date() }, enqueuedMs: Date.now(), resolve, reject })
      if (!this.flushing) void this.flush()
    })
  }

  /** Whether commits stall: a statement has run too long, or the last one ran out of time. */
  get stalled (): boolean {
    return this.timedOut || (this.statementSentMs !== undefined && Date.now() - this.statementSentMs > stallAfterMs)
  }

  stop (): void {
    clearInterval(this.sweepTimer)
  }

  /** Answers the publishes that waited too long for a statement; they are never sent. */
  private sweep (): void {
    const now = Date.now()
    let expired = 0
    while (expired < this.queue.length && now - (this.queue[expired] as QueueEntry).enqueuedMs > this.maxQueueWaitMs) expired++
    if (expired === 0) return
    const error = new PublishUnavailableError('the database did not store the message in time')
    for (const entry of this.queue.splice(0, expired)) entry.reject(error)
  }

  private async flush (): Promise<void> {
    this.flushing = true
    while (this.queue.length > 0) await this.store(this.takeBatch())
    this.flushing = false
  }

  /** The next batch, each author's ref once: a repeat rides on the first one's answer. */
  private takeBatch (): QueueEntry[] {
    const batch: QueueEntry[] = []
    const byRef = new Map<string, QueueEntry>()
    while (batch.length < maxBatchMessages && this.queue.length > 0) {
      const entry = this.queue.shift() as QueueEntry
      const { ref, authorId } = entry.message
      const key = ref === undefined ? undefined : `${authorId}\n${ref}`
      const first = key === undefined ? undefined : byRef.get(key)
      if (first !== undefined) {
        (first.repeats ??= []).push(entry)
        continue
      }
      if (key !== undefined) byRef.set(key, entry)
      batch.push(entry)
    }
    return batch
  }

  private async store (batch: QueueEntry[]): Promise<void> {
    if (batch.length === 0) return
    let frames: MessageFrame[]
    this.statementSentMs = Date.now()
    const sentAt = performance.now()
    try {
      frames = await withTimeout(storeBatch(this.db, batch.map((entry) => entry.message), this.notify),
        this.maxStatementWaitMs, 'the database did not answer in time')
        .finally(() => { this.onStatement((performance.now() - sentAt) / 1000, batch.length) })
      this.timedOut = false
    } catch (error) {
      this.timedOut = isTimeout(error)
      await this.storeApart(batch, error)
      return
    } finally {
      this.statementSentMs = undefined
    }
    batch.forEach((entry, i) => { this.answer(entry, { message: frames[i] as MessageFrame, duplicate: false }) })
  }

  /** After a batch failed: whatever the failure was not about is stored together again. */
  private async storeApart (batch: QueueEntry[], error: unknown): Promise<void> {
    if (isUniqueViolation(error)) {
      // Refs used before (here or on another instance): answered with their first message.
      const firsts = await findByRefs(this.db, batch.flatMap((entry) => entry.message.ref === undefined ? [] : [{ authorId: entry.message.authorId, ref: entry.message.ref }]))
        .catch((lookupError: unknown) => { this.fail(batch, lookupError); return undefined })
      if (firsts === undefined) return
      const fresh: QueueEntry[] = []
      for (const entry of batch) {
        const first = entry.message.ref === undefined ? undefined : firsts.get(`${entry.message.authorId}\n${entry.message.ref}`)
        if (first === undefined) fresh.push(entry)
        else this.answer(entry, { message: first, duplicate: true })
      }
      if (fresh.length < batch.length) await this.store(fresh)
      else this.fail(batch, error)
      return
    }
    if (isRefusedData(error)) {
      if (batch.length === 1) {
        this.fail(batch, new PublishRefusedError(`the database refused the message: ${(error as Error).message}`))
        return
      }
      // Halves, in order: the one message the database refuses is found in a few statements.
      const half = Math.ceil(batch.length / 2)
      await this.store(batch.slice(0, half))
      await this.store(batch.slice(half))
      return
    }
    this.fail(batch, error)
  }

  /** A publish is stored: its promise resolves now, its message goes to onCommitted next tick. */
  private answer (entry: QueueEntry, stored: StoredMessage): void {
    entry.resolve(stored)
    if (!stored.duplicate) {
      this.answered.push(stored.message)
      if (!this.handOnScheduled) {
        this.handOnScheduled = true
        process.nextTick(this.handOn)
      }
    }
    for (const repeat of entry.repeats ?? []) this.answer(repeat, { message: stored.message, duplicate: true })
  }

  private fail (batch: readonly QueueEntry[], error: unknown): void {
    for (const entry of batch) {
      entry.reject(error)
      this.fail(entry.repeats ?? [], error)
    }
  }
}

/** The statement ran out of time: the server's statement_timeout (query_canceled), or ours. */
function isTimeout (error: unknown): boolean {
  return error instanceof TimeoutError || sqlState(error) === '57014'
}
