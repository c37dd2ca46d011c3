import type { FastifyBaseLogger } from 'fastify'
import type { Queryable } from './db/database.js'
import { readRange } from './message-store.js'
import type { MessageFrame } from './protocol.js'

/**
 * Ordering and gap fill: each topic's messages go on here in id order, each once. The table
 * is the truth: ids are gapless per topic, so a gap in what arrives (a NOTIFY lost with the
 * LISTEN connection, one that carried only where to read its messages, one that overtook
 * another) is seen and filled from the table.
 */

/** Where a topic's sequence of ids stands here. */
export interface TopicSequence {
  /**
   * The highest id passed on in order; undefined until the first subscriber's history read
   * tells where the topic stands.
   */
  lastId: number | undefined
  /** Messages that arrived ahead of a gap (or before lastId was known), waiting for it to fill. */
  pending: MessageFrame[]
  /** Known to be committed up to here (a NOTIFY without the messages): read up to it. */
  wanted: number
  /** The transport was down: read everything after lastId. */
  readToEnd: boolean
  /** A read of the table is on its way (or about to be): what arrives waits in `pending`. */
  filling: boolean
}

/** What the messages are passed on to, in id order: the topic bus. */
export interface InOrderReceiver<Topic extends TopicSequence> {
  /** The topic's next message (lastId has just become its id). */
  fanOut(topic: Topic, frame: MessageFrame): void
  /** Whether `topic` is still the one of that name (it goes when its last subscriber leaves). */
  isCurrent(name: string, topic: Topic): boolean
}

export interface MessageOrderOptions<Topic extends TopicSequence> {
  db: Queryable
  log: FastifyBaseLogger
  receiver: InOrderReceiver<Topic>
}

/** Retry a failed gap fill after this long (the database may be coming back). */
const fillRetryMs = 500
/** Rows read per query when filling a gap; a longer gap takes several. */
export const fillPageSize = 1000
/** Gap fills reading at once, however many topics need one (after a LISTEN reconnect, all do). */
export const maxConcurrentFills = 4

export class MessageOrder<Topic extends TopicSequence> {
  private readonly db: Queryable
  private readonly log: FastifyBaseLogger
  private readonly receiver: InOrderReceiver<Topic>
  private closed = false
  private fillsReading = 0
  /** Fills waiting for one of the maxConcurrentFills places. */
  private readonly fillsWaiting: Array<() => void> = []

  constructor (options: MessageOrderOptions<Topic>) {
    this.db = options.db
    this.log = options.log
    this.receiver = options.receiver
  }

  /** A committed message of the topic: passed on at once when it is the next, else once the gap before it fills. */
  arrive (name: string, topic: Topic, frame: MessageFrame): void {
    if (topic.lastId !== undefined && frame.id === topic.lastId + 1 && !topic.filling && topic.pending.length === 0) {
      this.passOn(topic, frame)
      return
    }
    topic.pending.push(frame)
    this.advance(name, topic)
  }

  /** The topic's first history read here says where it stands: what waited follows from there. */
  startAt (name: string, topic: Topic, lastId: number): void {
    topic.lastId = lastId
    this.advance(name, topic)
  }

  /** Something was committed up to `id` that did not come with its content: read it. */
  wantUpTo (name: string, topic: Topic, id: number): void {
    topic.wanted = Math.max(topic.wanted, id)
    this.advance(name, topic)
  }

  /** The transport was down: read whatever the topic missed. */
  readToEnd (name: string, topic: Topic): void {
    topic.readToEnd = true
    this.advance(name, topic)
  }

  close (): void {
    this.closed = true
  }

  private passOn (topic: Topic, frame: MessageFrame): void {
    topic.lastId = frame.id
    this.receiver.fanOut(topic, frame)
  }

  /** Passes on what is pending in order; whatever is still missing is read from the table. */
  private advance (name: string, topic: Topic): void {
    if (topic.lastId === undefined || topic.filling) return
    this.passOnPending(topic)
    if (this.needsFill(topic)) this.fill(name, topic)
  }

  private passOnPending (topic: Topic): void {
    if (topic.lastId === undefined || topic.pending.length === 0) return
    topic.pending.sort((a, b) => a.id - b.id)
    let next = topic.pending[0]
    while (next !== undefined && next.id <= topic.lastId + 1) {
      topic.pending.shift()
      if (next.id === topic.lastId + 1) this.passOn(topic, next)
      next = topic.pending[0]
    }
  }

  private needsFill (topic: Topic): boolean {
    return topic.lastId !== undefined && (topic.readToEnd || topic.pending.length > 0 || topic.wanted > topic.lastId)
  }

  /**
   * Reads what is missing after lastId from the table, a page at a time, until nothing is.
   * Deferred by a turn of the event loop: a local publish that committed just before may
   * still be on its way here, and then no read is needed.
   */
  private fill (name: string, topic: Topic): void {
    topic.filling = true
    setImmediate(() => {
      topic.filling = false
      if (this.closed || !this.receiver.isCurrent(name, topic) || topic.lastId === undefined) return
      this.passOnPending(topic)
      if (!this.needsFill(topic)) return
      const from = topic.lastId
      const gapEnd = topic.pending[0] === undefined ? topic.wanted : topic.pending[0].id - 1
      const upTo = topic.readToEnd ? undefined : Math.max(topic.wanted, gapEnd)
      const readToEnd = topic.readToEnd
      topic.readToEnd = false
      topic.filling = true
      this.inFillPlace(async () => await readRange(this.db, name, from, upTo, fillPageSize)).then((frames) => {
        topic.filling = false
        if (!this.receiver.isCurrent(name, topic)) return
        for (const frame of frames) if (frame.id === (topic.lastId ?? 0) + 1) this.passOn(topic, frame)
        // A full page may not be the end of it.
        if (readToEnd && frames.length === fillPageSize) topic.readToEnd = true
        this.advance(name, topic)
      }, (error: unknown) => {
        this.log.warn({ err: error, topic: name }, 'topic bus: reading missed messages failed; retrying')
        if (readToEnd) topic.readToEnd = true
        setTimeout(() => {
          topic.filling = false
          if (!this.closed && this.receiver.isCurrent(name, topic)) this.advance(name, topic)
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
