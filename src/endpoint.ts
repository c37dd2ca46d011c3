import type { Writable } from 'node:stream'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type {} from '@fastify/websocket'
import { CloseCode } from './protocol.js'

/**
 * The endpoint layer: a WebSocket endpoint is a path, a keep-alive interval and handlers
 * for open (which may refuse before the upgrade), text, binary and close. Each connection
 * carries its own state (made by `open` from the HTTP request and its session). Handlers of
 * one connection run one at a time, in frame order.
 */

/** A refusal from `open`: sent as a plain HTTP response, and no socket is ever opened. */
export interface Refusal {
  refuse: true
  statusCode: number
  error: string
  message: string
}

export function refuse (statusCode: number, error: string, message: string): Refusal {
  return { refuse: true, statusCode, error, message }
}

export interface EndpointDefinition<State, Frame extends object = object> {
  /** A name for logs and decorators. */
  name: string
  path: string
  /** Milliseconds between pings; a peer with no pong by the next ping is terminated. 0: off. */
  keepaliveIntervalMs: number
  /** Send-buffer bound: a connection whose unsent data passes it is closed with 1013. */
  maxBufferedBytes: number
  /** Before the upgrade, from the HTTP request and its session: the connection's state, or a refusal. */
  open(request: FastifyRequest): Promise<State | Refusal>
  /** Right after the upgrade. */
  opened?(connection: Connection<State, Frame>): Promise<void> | void
  /** One text frame (valid UTF-8, within the frame size limit). */
  text(connection: Connection<State, Frame>, data: string): Promise<void> | void
  /** One binary frame; without this handler a binary frame closes the connection with 1003. */
  binary?(connection: Connection<State, Frame>, data: Buffer): Promise<void> | void
  /**
   * The connection is gone, whoever closed it; runs once. `code` and `reason` are the
   * server's own when it closed first (1008, 1013, …), else the peer's (1006: cut off).
   */
  closed?(connection: Connection<State, Frame>, code: number, reason: string): void
  /**
   * An upgrade answered with an HTTP status instead of a socket: refused by `open`, or by
   * any hook or error before it.
   */
  refused?(statusCode: number): void
  /** Before shutdown closes every socket with 1001: finish work in flight. */
  drain?(): Promise<void>
}

/** Frames waiting for a handler before the socket stops reading (TCP back-pressure). */
const maxQueuedFrames = 32
/** Send options of every pre-encoded frame, allocated once. */
const textFrame = { binary: false } as const
/** A keep-alive round this late, as a share of the interval, judges no one (see addEndpoint). */
const maxKeepaliveDelayShare = 1.5
/** A peer that has not completed the closing handshake by then is cut off. */
const closeGraceMs = 2000
/** Where a WebSocket carries its connection, for the listeners every socket of an endpoint shares. */
const connectionKey = Symbol('connection')

/**
 * Write coalescing: the frames a connection is sent in one turn of the event loop (the
 * messages of one commit, its acks) leave in one write. A loopback or network write is a
 * system call that costs more than encoding the frame; a batch of 30 messages to one
 * subscriber is one call instead of 30. The first frame of a turn corks the socket, and the
 * turn's end uncorks every socket it corked; only then is the send-buffer bound checked, on
 * what the kernel did not take.
 */
const gathering: Array<{ endTurn(): void }> = []
let turnEndScheduled = false

function endTurn (): void {
  turnEndScheduled = false
  for (const connection of gathering.splice(0)) connection.endTurn()
}

/** Corks the socket for the rest of this turn; false when it cannot be (no TCP socket of its own, or gone). */
function gather (tcp: Writable | undefined, connection: { endTurn(): void }): boolean {
  if (tcp === undefined || tcp.destroyed) return false
  if (tcp.writableCorked > 0) return true
  tcp.cork()
  gathering.push(connection)
  if (!turnEndScheduled) {
    turnEndScheduled = true
    process.nextTick(endTurn)
  }
  return true
}

/**
 * Pre-framed messages: a message that goes to many connections is framed once (a server's
 * frames are not masked, so its bytes are the same for every connection) and written to each
 * TCP socket as one chunk, past ws's framing of every send. That framing allocated more per
 * delivery than the delivery itself (young-generation collections every 0.4 s in the
 * latency scenario). Only for sockets where no extension transforms frames: permessage-deflate
 * is off (plugins/websocket.ts), and a socket that negotiated one goes through ws.
 */
let lastPayload: Buffer | undefined
let lastWire: Buffer | undefined

/** @internal exported for its test */
export function wireFrame (payload: Buffer): Buffer {
  if (payload === lastPayload && lastWire !== undefined) return lastWire
  const length = payload.length
  const headerBytes = length < 126 ? 2 : length <= 0xffff ? 4 : 10
  const wire = Buffer.allocUnsafe(headerBytes + length)
  wire[0] = 0x81 // FIN, text frame
  if (headerBytes === 2) wire[1] = length
  else if (headerBytes === 4) {
    wire[1] = 126
    wire.writeUInt16BE(length, 2)
  } else {
    wire[1] = 127
    wire.writeBigUInt64BE(BigInt(length), 2)
  }
  payload.copy(wire, headerBytes)
  lastPayload = payload
  lastWire = wire
  return wire
}

export class Connection<State, Frame extends object = object> {
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
  private settling = false
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
    private readonly definition: EndpointDefinition<State, Frame>,
    /** The upgrade request's id, for logs. */
    readonly reqId: string,
    /** Shared by every connection of the endpoint (no closure per connection). */
    private readonly onError: (error: unknown, connection: Connection<State, Frame>) => void,
    private readonly onSlowConsumer: () => void
  ) {
    this.state = state
    this.tcp = socket.extensions === '' ? (socket as unknown as { _socket?: Writable })._socket : undefined
  }

  get isOpen (): boolean {
    return !this.closing && this.socket.readyState === this.socket.OPEN
  }

  /** Sends a text frame: a frame, or one already encoded once for many receivers. */
  send (frame: Frame | Buffer): void {
    if (!this.isOpen) return
    const { tcp } = this
    const gathered = gather(tcp, this)
    if (tcp === undefined || !Buffer.isBuffer(frame)) this.socket.send(Buffer.isBuffer(frame) ? frame : JSON.stringify(frame), textFrame)
    else if (tcp.writable) tcp.write(wireFrame(frame))
    if (!gathered) this.checkSendBuffer()
  }

  /** @internal the turn's frames leave: what the kernel did not take counts against the bound. */
  endTurn (): void {
    this.tcp?.uncork()
    if (this.isOpen) this.checkSendBuffer()
  }

  private checkSendBuffer (): void {
    // What the peer asked for itself (replies) never makes it a slow consumer.
    if (this.socket.bufferedAmount - this.replyBytes > this.definition.maxBufferedBytes) {
      this.close(CloseCode.tryAgainLater, 'too slow to keep up; reconnect with since')
      this.onSlowConsumer()
    }
  }

  /**
   * Sends the answer to the peer's own request (a large history, say): not counted against
   * the send-buffer bound. A handler that awaits `repliesWritten` before reading on keeps
   * at most one such answer in memory per connection.
   */
  reply (frame: Frame): void {
    if (!this.isOpen) return
    const data = Buffer.from(JSON.stringify(frame))
    this.replyBytes += data.length
    gather(this.tcp, this)
    this.socket.send(data, textFrame, () => {
      this.replyBytes -= data.length
      if (this.replyBytes === 0) this.wakeReplyWaiters()
    })
  }

  /** Resolves once every reply sent so far is written to the socket (or the socket is gone). */
  async repliesWritten (): Promise<void> {
    if (this.replyBytes === 0 || this.closing || this.settling) return
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
    // Read again (shutdown stopped reading, see settle): the peer's answering close frame ends
    // the handshake now, rather than the grace below; frames sent before it are dropped.
    this.socket.resume()
    setTimeout(() => { this.socket.terminate() }, closeGraceMs).unref()
  }

  /** @internal the peer broke the protocol; ws has sent the close with this code. */
  faulted (code: number, reason: string): void {
    this.sentClose ??= { code, reason }
    this.closing = true
    this.queue = undefined
  }

  /** @internal the socket is closed: nothing more to send, receive or cut off. Says how it ended. */
  closed (peerCode: number, peerReason: string): { code: number, reason: string } {
    this.closing = true
    this.queue = undefined
    this.wakeReplyWaiters()
    return this.sentClose ?? { code: peerCode, reason: peerReason }
  }

  /** @internal a frame from the socket, run after the ones before it. */
  receive (data: Buffer, isBinary: boolean): void {
    if (this.closing) return
    const queue = this.queue ??= []
    queue.push({ data, isBinary })
    if (queue.length >= maxQueuedFrames) this.socket.pause()
    this.running ??= this.run()
  }

  /** @internal stops reading and resolves once the frames already received are handled. */
  async settle (): Promise<void> {
    this.socket.pause()
    // Shutting down: no handler waits for a peer that may never read.
    this.settling = true
    this.wakeReplyWaiters()
    await this.running
  }

  private async run (): Promise<void> {
    for (let next = this.queue?.shift(); next !== undefined; next = this.queue?.shift()) {
      if ((this.queue?.length ?? 0) < maxQueuedFrames / 2 && this.socket.isPaused) this.socket.resume()
      try {
        if (!next.isBinary) await this.definition.text(this, next.data.toString('utf8'))
        else if (this.definition.binary !== undefined) await this.definition.binary(this, next.data)
        else this.close(CloseCode.binaryFrame, 'binary frames are not accepted')
      } catch (error) {
        this.onError(error, this)
      }
    }
    this.running = undefined
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** @internal the connection state `open` made for an upgrading request. */
    endpointState?: unknown
  }
}

export interface Endpoint<State, Frame extends object = object> {
  readonly connections: ReadonlySet<Connection<State, Frame>>
  /** Connections closed so far for passing maxBufferedBytes (the metrics read it). */
  readonly slowConsumerCloses: number
}

/**
 * Adds an endpoint to an app that has @fastify/websocket registered. `open` runs as a
 * preValidation hook: a refusal answers the upgrade request with its status, and the
 * upgrade never happens.
 */
export function addEndpoint<State, Frame extends object = object> (fastify: FastifyInstance, definition: EndpointDefinition<State, Frame>): Endpoint<State, Frame> {
  const connections = new Set<Connection<State, Frame>>()
  const endpoint = definition.name
  const handlerFailed = (error: unknown, connection: Connection<State, Frame>): void => {
    fastify.log.error({ err: error, reqId: connection.reqId, endpoint }, 'endpoint handler failed')
  }
  let slowConsumerCloses = 0
  const slowConsumerClosed = (): void => { slowConsumerCloses++ }

  // The socket listeners, made once for the endpoint rather than once per socket (an idle
  // connection costs less): each finds its connection on the socket it is called on.
  type Carrier = WebSocket & { [connectionKey]?: Connection<State, Frame> }
  function onSocketError (this: Carrier, error: Error & { code?: string }): void {
    // The peer's fault (a frame too large, bad UTF-8, …): ws has sent its close; the
    // connection's close says which, in the one line its `closed` handler may log. No stack.
    const connection = this[connectionKey]
    const reason = `${error.code ?? 'socket error'}: ${error.message}`
    if (connection !== undefined) connection.faulted(closeCodeOf(error.code), reason)
    else fastify.log.info({ endpoint, reason }, 'socket error')
    this.terminate()
  }
  function onPong (this: Carrier): void {
    const connection = this[connectionKey]
    if (connection !== undefined) connection.alive = true
  }
  function onMessage (this: Carrier, data: Buffer, isBinary: boolean): void {
    this[connectionKey]?.receive(data, isBinary)
  }
  function onClose (this: Carrier, code: number, reason: Buffer): void {
    const connection = this[connectionKey]
    if (connection === undefined) return
    this[connectionKey] = undefined
    connections.delete(connection)
    const ended = connection.closed(code, reason.toString('utf8'))
    definition.closed?.(connection, ended.code, ended.reason)
  }

  fastify.route({
    method: 'GET',
    url: definition.path,
    preValidation: async (request, reply) => {
      const result = await definition.open(request)
      if (isRefusal(result)) {
        return await reply.code(result.statusCode).send({ error: result.error, message: result.message })
      }
      request.endpointState = result
    },
    // An upgrade that gets an HTTP answer: one that opens is hijacked and sends none. (Not
    // onResponse: injectWS's in-memory socket never finishes a response.)
    onSend: async (request, reply, payload) => {
      if (request.ws) definition.refused?.(reply.statusCode)
      return payload
    },
    // A plain GET that may open the socket but did not ask to: say how, in JSON like every error.
    handler: async (_request, reply) => {
      return await reply.code(426).header('upgrade', 'websocket')
        .send({ error: 'upgrade_required', message: `${definition.path} is a WebSocket endpoint: open it with an upgrade request` })
    },
    wsHandler: (socket, request) => {
      // Nothing that lives as long as the socket holds the upgrade request: an idle
      // connection should cost its socket and its state, not the whole HTTP exchange.
      const reqId = request.id
      const connection = new Connection<State, Frame>(socket, request.endpointState as State, definition, reqId, handlerFailed, slowConsumerClosed)
      request.endpointState = undefined
      // @fastify/websocket's error listener closes over the request and reply; this one does
      // the same job (log, then drop the socket) without them.
      socket.removeAllListeners('error')
      const carrier = socket as Carrier
      carrier[connectionKey] = connection
      socket.on('error', onSocketError)
      detachUpgradeResponse(socket)
      connections.add(connection)
      socket.on('pong', onPong)
      socket.on('message', onMessage)
      socket.on('close', onClose)
      const opened = definition.opened?.(connection)
      if (opened instanceof Promise) {
        opened.catch((error: unknown) => {
          fastify.log.error({ err: error, reqId, endpoint }, 'endpoint open failed')
          connection.close(1011, 'internal error')
        })
      }
    }
  })

  // One timer for every connection: whoever did not answer the last ping is gone. A round
  // that comes late (the event loop was blocked: a long GC, a loaded machine) judges no one,
  // as the pongs that came meanwhile are not read yet (timers run before I/O); the next
  // round judges, late or not, so that a loop always behind still cuts dead peers off.
  if (definition.keepaliveIntervalMs > 0) {
    let lastRoundMs = Date.now()
    let skipped = false
    const timer = setInterval(() => {
      const now = Date.now()
      const late = now - lastRoundMs > definition.keepaliveIntervalMs * maxKeepaliveDelayShare
      lastRoundMs = now
      skipped = late && !skipped
      if (skipped) return
      for (const connection of connections) {
        if (!connection.alive) {
          connection.socket.terminate()
          continue
        }
        connection.alive = false
        connection.socket.ping()
      }
    }, definition.keepaliveIntervalMs)
    timer.unref()
    fastify.addHook('onClose', async () => { clearInterval(timer) })
  }

  // Shutdown: read no more, finish the frames already received, then close with 1001.
  fastify.addHook('preClose', async () => {
    await Promise.all([...connections].map(async (connection) => { await connection.settle() }))
    await definition.drain?.()
    await Promise.all([...connections].map(async (connection) => {
      await new Promise<void>((resolve) => {
        if (connection.socket.readyState === connection.socket.CLOSED) { resolve(); return }
        connection.socket.once('close', () => { resolve() })
        connection.close(CloseCode.shuttingDown, 'server shutting down')
      })
    }))
  })

  return { connections, get slowConsumerCloses () { return slowConsumerCloses } }
}

/**
 * The HTTP response object that answered the upgrade stays attached to the TCP socket
 * (and through it the raw request, headers and all) for the socket's life; let it go.
 */
function detachUpgradeResponse (socket: WebSocket): void {
  const tcp = (socket as unknown as { _socket?: { _httpMessage?: { detachSocket?: (socket: unknown) => void } | null } })._socket
  const response = tcp?._httpMessage
  if (tcp !== undefined && response?.detachSocket !== undefined) response.detachSocket(tcp)
}

/** The close code ws sends for a peer's protocol fault, by the code of its error. */
function closeCodeOf (wsErrorCode: string | undefined): number {
  if (wsErrorCode === 'WS_ERR_INVALID_UTF8') return CloseCode.invalidUtf8
  if (wsErrorCode === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return CloseCode.frameTooLarge
  return 1002 // protocol error
}

function isRefusal (value: unknown): value is Refusal {
  return typeof value === 'object' && value !== null && (value as Partial<Refusal>).refuse === true
}
