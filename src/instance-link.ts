import type { FastifyBaseLogger } from 'fastify'
import { decodeNotification, encodeEvent, senderPrefix, type BusEvent } from './bus-format.js'
import type { Database, Listener } from './db/database.js'
import type { NotifyOptions } from './message-store.js'
import type { MessageFrame } from './protocol.js'

/**
 * The link to the other instances: LISTEN on the bus channel (with reconnection, then a
 * catch-up from the table), NOTIFY for events, and what is heard, decoded
 * (src/bus-format.ts) and handed on. Messages committed here are not sent from here: the
 * statement that stores them NOTIFYs (src/message-store.ts).
 */

/** What the link hands on what it hears from the other instances: the topic bus. */
export interface InstancesListener {
  /** A message committed on another instance. */
  deliverCommitted(frame: MessageFrame): void
  /** Messages committed elsewhere up to `lastId`, too large for the NOTIFY: read them. */
  hint(topic: string, lastId: number): void
  /**
   * The LISTEN connection is back: read whatever every topic missed meanwhile (the topic bus
   * first reads again who may receive the private topics: their membership changes may have
   * been missed too).
   */
  catchUp(): void
  /** Whether the topic has subscribers here. */
  serves(topic: string): boolean
}

export interface InstanceLinkOptions {
  db: Database
  log: FastifyBaseLogger
  /** Where the other instances listen; undefined when there are none. */
  transport: NotifyOptions | undefined
  /** Told, per message committed on another instance, how long after its commit it reached here. */
  busLag: (seconds: number) => void
  heard: InstancesListener
}

export class InstanceLink {
  readonly transport: NotifyOptions | undefined
  private readonly db: Database
  private readonly log: FastifyBaseLogger
  private readonly busLag: (seconds: number) => void
  private readonly heard: InstancesListener
  private listener: Listener | undefined
  private readonly eventHandlers: Array<(event: BusEvent) => void> = []
  private readonly readyWaiters: Array<() => void> = []
  /** How this instance's own notifications start (src/bus-format.ts). */
  private readonly ownPrefix: string | undefined

  constructor (options: InstanceLinkOptions) {
    this.db = options.db
    this.log = options.log
    this.transport = options.transport
    this.busLag = options.busLag
    this.heard = options.heard
    this.ownPrefix = this.transport === undefined ? undefined : senderPrefix(this.transport.instanceId)
  }

  /** Starts hearing the other instances: LISTEN, with reconnection and catch-up. */
  async listen (): Promise<void> {
    if (this.transport === undefined) return
    this.listener = await this.db.listen(this.transport.channel, {
      onNotify: (payload) => { this.hear(payload) },
      onDown: (error) => { this.log.warn({ err: error }, 'topic bus: LISTEN connection lost; reconnecting') },
      onUp: () => {
        this.log.info('topic bus: LISTEN connection back; catching up from the table')
        this.heard.catchUp()
        for (const wake of this.readyWaiters.splice(0)) wake()
      }
    })
  }

  /** Whether this instance hears every other one (always, when there are none). */
  get ready (): boolean {
    return this.transport === undefined || this.listener?.up === true
  }

  /** Resolves once the link is ready (at once when it is). */
  async whenReady (): Promise<void> {
    if (this.ready) return
    await new Promise<void>((resolve) => { this.readyWaiters.push(resolve) })
  }

  /** Tells every other instance about an event (this one handles its own). */
  tellOtherInstances (event: BusEvent): void {
    if (this.transport === undefined) return
    this.db.notify(this.transport.channel, encodeEvent(this.transport.instanceId, event)).catch((error: unknown) => {
      this.log.warn({ err: error, event: event.kind }, 'topic bus: announcing an event failed')
    })
  }

  /** Events told by other instances. */
  onEvent (handler: (event: BusEvent) => void): void {
    this.eventHandlers.push(handler)
  }

  async close (): Promise<void> {
    await this.listener?.close()
  }

  /** A NOTIFY from an instance: its messages, where to read them, or an event. */
  private hear (payload: string): void {
    if (this.ownPrefix !== undefined && payload.startsWith(this.ownPrefix)) return
    const note = decodeNotification(payload)
    if (note === undefined) {
      this.log.warn({ payload: payload.slice(0, 200) }, 'topic bus: a notification that is not ours')
      return
    }
    switch (note.kind) {
      case 'messages': {
        note.messages.forEach(({ author, text, at, data, bot }, i) => {
          const frame: MessageFrame = { type: 'message', topic: note.topic, id: note.firstId + i, author, text, at }
          if (data !== undefined) frame.data = data
          if (bot === true) frame.bot = true
          this.heard.deliverCommitted(frame)
        })
        if (note.committedAtMs === undefined || !this.heard.serves(note.topic)) return
        // The database's clock against this one: a clock behind it would make a lag below zero.
        const lagSeconds = Math.max(0, Date.now() - note.committedAtMs) / 1000
        for (let i = 0; i < note.messages.length; i++) this.busLag(lagSeconds)
        return
      }
      case 'hint':
        this.heard.hint(note.topic, note.lastId)
        return
      case 'event':
        for (const handler of this.eventHandlers) handler(note.event)
    }
  }
}
