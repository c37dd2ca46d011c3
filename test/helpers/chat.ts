import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'ws'
import type { ServerFrame } from '../../src/protocol.js'

/**
 * A test client over a real WebSocket: frames are queued as they arrive and awaited in
 * order, so tests wait on events, never on time.
 */
export class ChatClient {
  private readonly frames: ServerFrame[] = []
  private readonly waiters: Array<() => void> = []
  readonly closed: Promise<{ code: number, reason: string }>

  constructor (
    readonly socket: WebSocket,
    /** Joined to the server in memory (injectWS), not over TCP. */
    private readonly inMemory = false
  ) {
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) throw new Error('the server sent a binary frame')
      this.frames.push(JSON.parse(data.toString('utf8')) as ServerFrame)
      for (const wake of this.waiters.splice(0)) wake()
    })
    this.closed = new Promise((resolve) => {
      socket.once('close', (code: number, reason: Buffer) => {
        resolve({ code, reason: reason.toString() })
        for (const wake of this.waiters.splice(0)) wake()
      })
    })
  }

  send (frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  /** The next frame, whatever it is. */
  async next (): Promise<ServerFrame> {
    for (;;) {
      const frame = this.frames.shift()
      if (frame !== undefined) return frame
      if (this.socket.readyState === WebSocket.CLOSED) throw new Error('closed while waiting for a frame')
      await new Promise<void>((resolve) => { this.waiters.push(resolve) })
    }
  }

  /** The next frame of this type; frames of other types before it are skipped. */
  async nextOf<T extends ServerFrame['type']> (type: T): Promise<Extract<ServerFrame, { type: T }>> {
    for (;;) {
      const frame = await this.next()
      if (frame.type === type) return frame as Extract<ServerFrame, { type: T }>
    }
  }

  /** Frames received and not yet taken. */
  get queued (): readonly ServerFrame[] {
    return this.frames
  }

  close (): void {
    this.socket.close()
    // injectWS joins client and server by an in-memory stream whose server side never says
    // it closed: the server would keep the connection until ws's 30 s close timeout, and
    // shutting the app down would wait for it. Dropping the stream right after the close
    // frame ends it on both sides, as a TCP close would.
    if (this.inMemory) process.nextTick(() => { this.socket.terminate() })
  }
}

/** The wsTicket of a logged-in session. */
export async function ticketFor (app: FastifyInstance, cookie: string): Promise<string> {
  const response = await app.inject({ url: '/api/me', headers: { cookie } })
  if (response.statusCode !== 200) throw new Error(`/api/me: ${response.statusCode}`)
  return response.json<{ wsTicket: string }>().wsTicket
}

/** Opens /chat in memory through injectWS, as the session of `cookie`. */
export async function connect (app: FastifyInstance, cookie: string, options: { topic?: string, ticket?: string, headers?: Record<string, string> } = {}): Promise<ChatClient> {
  const ticket = options.ticket ?? await ticketFor(app, cookie)
  const query = new URLSearchParams({ ticket })
  if (options.topic !== undefined) query.set('topic', options.topic)
  let client: ChatClient | undefined
  await app.injectWS(`/chat?${query.toString()}`, { headers: { cookie, ...options.headers } }, {
    onInit: (socket) => { client = new ChatClient(socket, true) }
  })
  if (client === undefined) throw new Error('injectWS gave no socket')
  return client
}

/** Opens /chat over TCP on a listening app, for what injectWS cannot do (ping, pong, raw frames). */
export async function connectTcp (baseUrl: string, cookie: string, ticket: string, options: { topic?: string, autoPong?: boolean } = {}): Promise<ChatClient> {
  const query = new URLSearchParams({ ticket })
  if (options.topic !== undefined) query.set('topic', options.topic)
  const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/chat?${query.toString()}`, { headers: { cookie }, autoPong: options.autoPong ?? true })
  const client = new ChatClient(socket)
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => { resolve() })
    socket.once('error', reject)
  })
  return client
}
