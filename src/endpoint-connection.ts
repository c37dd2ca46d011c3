import type { Writable } from 'node:stream'
import type { WebSocket } from 'ws'
import { CloseCode, type ServerFrame } from './protocol.js'
import type { Subscriber } from './topic-bus.js'
import type { WireFrames } from './wire-frame.js'
import type { TurnWriter, WriteCoalescer } from './write-coalescing.js'

/** The handlers a connection runs for the frames it is sent (the endpoint's definition has them). */
export interface FrameHandlers<State, Frame extends object> {
  /** Send-buffer bound: a connection whose unsent data passes it is closed with 1013. */
  maxBufferedBytes: number
  /** One text frame (valid UTF-8, within the frame size limit). */
  text(connection: Connection<State, Frame>, data: string): Promise<void> | void
  /** One binary frame; without this handler a binary frame closes the connection with 1003. */
  binary?(connection: Connection<State, Frame>, data: Buffer): Promise<void> | void
}

/** What every connection of one endpoint shares, made once by addEndpoint (no closure per connection). */
export interface EndpointShared<State, Frame extends object> {
  readonly handlers: FrameHandlers<State, Frame>
  readonly writes: WriteCoalescer
  readonly wireFrames: WireFrames
  handlerFailed(error: unknown, connection: Connection<State, Frame>): void
  slowConsumerClosed(): void
}

/** Frames waiting for a handler before the socket stops reading (TCP back-pressure). */
const maxQueuedFrames = 32
/** Send options of every pre-encoded frame, allocated once. */
const textFrame = { binary: false } as const
/** A peer that has not completed the closing handshake by then is cut off. */
const closeGraceMs = 2000

/**
 * One WebSocket of an endpoint: its state, its frames handled one at a time in order, and
 * what it is sent. Every connection can be subscribed to topics: the topic bus sends it
 * ServerFrames, whatever else its endpoint's `Frame` is.
 */
export class Connection<State, Frame extends object = object> implements Subscriber, TurnWriter {
  /** The application's per-connection state. */
  readonly state: State
  alive = true
  private closing = false
  /** Frames waiting for their handler; made at the first frame (an idle connection has none). */
  private queue: Array<{ data: Buffer, isBinary: boolean }> | undefined
  private running: Promise<void> | undefined
  /** Bytes of replies handed to the socket and not yet written out. */
  private replyBytes = 0
  private replyWaiters: Array<() => void> | undefined
  /** Shutdown has begun: no handler waits for a peer that may never read. */
  private shuttingDown = false
  /** The close this side sent, if it closed first: what the connection ended with. */
  private sentClose: { code: number, reason: string } | undefined
  /**
   * The TCP socket under the WebSocket, where frames may be written to it directly (no
   * extension negotiated); corked while a turn's frames gather.
   */
  private readonly tcp: Writable | undefined

  constructor (
    readonly socket: WebSocket,
    state: State,
    private readonly endpoint: EndpointShared<State, Frame>,
    /** The upgrade request's id, for logs. */
    readonly reqId: string
  ) {
    this.state = state
    this.tcp = socket.extensions === '' ? (socket as unknown as { _socket?: Writable })._socket : undefined
  }

  get isOpen (): boolean {
    return !this.closing && this.socket.readyState === this.socket.OPEN
  }

  /** Sends a text frame: a frame, or one already encoded once for many receivers. */
  send (frame: Frame | ServerFrame | Buffer): void {
    if (!this.isOpen) return
    const { tcp, endpoint } = this
    const gathered = endpoint.writes.gather(tcp, this)
    if (tcp === undefined || !Buffer.isBuffer(frame)) this.socket.send(Buffer.isBuffer(frame) ? frame : JSON.stringify(frame), textFrame)
    else if (tcp.writable) tcp.write(endpoint.wireFrames.of(frame))
    if (!gathered) this.checkSendBuffer()
  }

  /** @internal the turn's frames leave: what the kernel did not take counts against the bound. */
  endTurn (): void {
    this.tcp?.uncork()
    if (this.isOpen) this.checkSendBuffer()
  }

  private checkSendBuffer (): void {
    // What the peer asked for itself (replies) never makes it a slow consumer.
    if (this.socket.bufferedAmount - this.replyBytes > this.endpoint.handlers.maxBufferedBytes) {
      this.close(CloseCode.tryAgainLater, 'too slow to keep up; reconnect with since')
      this.endpoint.slowConsumerClosed()
    }
  }

  /**
   * Sends the answer to the peer's own request (a large history, say): not counted against
   * the send-buffer bound. A handler that awaits `repliesWritten` before reading on keeps
   * at most one such answer in memory per connection.
   */
  reply (frame: Frame | ServerFrame): void {
    if (!this.isOpen) return
    const data = Buffer.from(JSON.stringify(frame))
    this.replyBytes += data.length
    this.endpoint.writes.gather(this.tcp, this)
    this.socket.send(data, textFrame, () => {
      this.replyBytes -= data.length
      if (this.replyBytes === 0) this.wakeReplyWaiters()
    })
  }

  /** Resolves once every reply sent so far is written to the socket (or the socket is gone). */
  async repliesWritten (): Promise<void> {
    if (this.replyBytes === 0 || this.closing || this.shuttingDown) return
    await new Promise<void>((resolve) => { (this.replyWaiters ??= []).push(resolve) })
  }

  private wakeReplyWaiters (): void {
    const waiters = this.replyWaiters
    this.replyWaiters = undefined
    for (const wake of waiters ?? []) wake()
  }

  /**
   * Closes with a code; the connection receives and sends nothing more from now on. A peer
   * that does not answer the close frame soon (a slow consumer never reads it) is cut off.
   */
  close (code: number, reason = ''): void {
    if (this.closing) return
    this.closing = true
    this.sentClose = { code, reason }
    this.queue = undefined
    this.socket.close(code, reason)
    // Read again (shutdown stopped reading, see finishReceived): the peer's answering close
    // frame ends the handshake now, rather than the grace below; frames sent before it are dropped.
    this.socket.resume()
    setTimeout(() => { this.socket.terminate() }, closeGraceMs).unref()
  }

  /** @internal the peer broke the protocol; ws has sent the close with this code. */
  faulted (code: number, reason: string): void {
    this.sentClose ??= { code, reason }
    this.closing = true
    this.queue = undefined
  }

  /** @internal the socket is closed: nothing more to send, take in or cut off. Says how it ended. */
  closed (peerCode: number, peerReason: string): { code: number, reason: string } {
    this.closing = true
    this.queue = undefined
    this.wakeReplyWaiters()
    return this.sentClose ?? { code: peerCode, reason: peerReason }
  }

  /** @internal a raw frame from the socket, handled after the ones before it. */
  enqueueFrame (data: Buffer, isBinary: boolean): void {
    if (this.closing) return
    const queue = this.queue ??= []
    queue.push({ data, isBinary })
    if (queue.length >= maxQueuedFrames) this.socket.pause()
    this.running ??= this.run()
  }

  /** @internal shutdown: stops reading and resolves once the frames already received are handled. */
  async finishReceived (): Promise<void> {
    this.socket.pause()
    this.shuttingDown = true
    this.wakeReplyWaiters()
    await this.running
  }

  private async run (): Promise<void> {
    const { handlers } = this.endpoint
    for (let next = this.queue?.shift(); next !== undefined; next = this.queue?.shift()) {
      if ((this.queue?.length ?? 0) < maxQueuedFrames / 2 && this.socket.isPaused) this.socket.resume()
      try {
        if (!next.isBinary) await handlers.text(this, next.data.toString('utf8'))
        else if (handlers.binary !== undefined) await handlers.binary(this, next.data)
        else this.close(CloseCode.binaryFrame, 'binary frames are not accepted')
      } catch (error) {
        this.endpoint.handlerFailed(error, this)
      }
    }
    this.running = undefined
  }
}
