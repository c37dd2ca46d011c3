import { isUniqueViolation } from './errors.js'
import type { Queryable } from './db/database.js'
import { storeBatch, storeMessage, type NewMessage, type NotifyOptions, type PendingMessage, type StoredMessage } from './message-store.js'
import type { MessageFrame } from './protocol.js'

/** Publishes stored by one statement at most. */
const maxBatchMessages = 256

interface QueueEntry {
  message: PendingMessage
  committed: ((stored: StoredMessage) => void) | undefined
  resolve: (stored: StoredMessage) => void
  reject: (error: unknown) => void
}

/**
 * The publish queue and its group commit: publishes that arrive while a statement runs
 * share the next one, so one transaction and one commit serve them all. Each publish is
 * answered after its commit: `committed` first (the publisher's ack), then `delivered`
 * (every subscriber here), so a publisher hears its ack before its own message comes back.
 */
export class PublishQueue {
  private readonly queue: QueueEntry[] = []
  private flushing = false

  constructor (
    private readonly db: Queryable,
    /** Set where other instances listen: every batch then NOTIFYs them in its statement. */
    private readonly notify: NotifyOptions | undefined,
    private readonly delivered: (message: MessageFrame) => void
  ) {}

  async add (input: NewMessage, committed?: (stored: StoredMessage) => void): Promise<StoredMessage> {
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
        const frames = await storeBatch(this.db, batch.map((entry) => entry.message), this.notify)
        batch.forEach((entry, i) => { this.settle(entry, { message: frames[i] as MessageFrame, duplicate: false }) })
      } catch (error) {
        if (!isUniqueViolation(error)) {
          for (const entry of batch) entry.reject(error)
          continue
        }
        // A ref used before: one by one, so that only that one answers with its first message.
        for (const entry of batch) {
          try {
            this.settle(entry, await storeMessage(this.db, entry.message, this.notify))
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
    if (!stored.duplicate) this.delivered(stored.message)
    entry.resolve(stored)
  }
}
