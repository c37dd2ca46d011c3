import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type {} from '@fastify/websocket'
import { CloseCode } from './protocol.js'
import { Connection, type EndpointShared, type FrameHandlers } from './endpoint-connection.js'
import { WireFrames } from './wire-frame.js'
import { WriteCoalescer } from './write-coalescing.js'

export { Connection } from './endpoint-connection.js'

/**
 * The endpoint layer: registering a WebSocket endpoint. An endpoint is a path, a keep-alive
 * interval and handlers for open (which may refuse before the upgrade), text, binary and
 * close. Each connection (src/endpoint-connection.ts) carries its own state, made by `open`
 * from the HTTP request and its session; handlers of one connection run one at a time, in
 * frame order.
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

/** An endpoint: an object literal, or a class that implements it (as /chat's ChatEndpoint does). */
export interface EndpointDefinition<State, Frame extends object = object> extends FrameHandlers<State, Frame> {
  /** A name for logs and decorators. */
  name: string
  path: string
  /** Milliseconds between pings; a peer with no pong by the next ping is terminated. 0: off. */
  keepaliveIntervalMs: number
  /** Before the upgrade, from the HTTP request and its session: the connection's state, or a refusal. */
  open(request: FastifyRequest): Promise<State | Refusal>
  /** Right after the upgrade. */
  opened?(connection: Connection<State, Frame>): Promise<void> | void
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
  /** At shutdown, once the frames already received are handled and before every socket is closed with 1001: finish work in flight. */
  finishInFlight?(): Promise<void>
}

/** A keep-alive round this late, as a share of the interval, judges no one (see addEndpoint). */
const maxKeepaliveDelayShare = 1.5
/** Where a WebSocket carries its connection, for the listeners every socket of an endpoint shares. */
const connectionKey = Symbol('connection')

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
  let slowConsumerCloses = 0
  const shared: EndpointShared<State, Frame> = {
    handlers: definition,
    writes: new WriteCoalescer(),
    wireFrames: new WireFrames(),
    handlerFailed (error, connection) {
      fastify.log.error({ err: error, reqId: connection.reqId, endpoint }, 'endpoint handler failed')
    },
    slowConsumerClosed () { slowConsumerCloses++ }
  }

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
    this[connectionKey]?.enqueueFrame(data, isBinary)
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
      const connection = new Connection<State, Frame>(socket, request.endpointState as State, shared, reqId)
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
    await Promise.all([...connections].map(async (connection) => { await connection.finishReceived() }))
    await definition.finishInFlight?.()
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
