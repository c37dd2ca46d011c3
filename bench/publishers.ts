import { randomBytes } from 'node:crypto'
import { io, type Socket } from 'socket.io-client'
import WebSocket from 'ws'

/**
 * Publishers are real clients: `ws` for Canopy and the limit, socket.io-client for the
 * peer. Each counts its unacknowledged publishes, so a driver can keep a window of them.
 */

export interface PublisherEvents {
  ack(): void
  /** A publish answered with an error frame (Canopy: rate_limited, unavailable…). */
  error(message: string): void
}

export interface Publisher {
  /** Publishes sent and not yet acknowledged. */
  readonly inflight: number
  publish(topic: string, text: string): void
  close(): void
}

const openTimeoutMs = 10_000

/**
 * Canopy's publish frame with a ref unique to the user (the limit relays the same frame and
 * answers a bare ack).
 */
class WsPublisher implements Publisher {
  inflight = 0
  private sent = 0
  private readonly tag = randomBytes(4).toString('hex')

  constructor (private readonly socket: WebSocket, private readonly events: PublisherEvents) {
    socket.on('message', (data: Buffer) => { this.answer(data.toString()) })
  }

  publish (topic: string, text: string): void {
    this.inflight++
    this.socket.send(JSON.stringify({ type: 'publish', topic, text, ref: `${this.tag}-${++this.sent}` }))
  }

  private answer (text: string): void {
    const frame = JSON.parse(text) as { type?: string, message?: string, ref?: string }
    if (frame.type === 'ack') {
      this.inflight--
      this.events.ack()
    } else if (frame.type === 'error') {
      if (frame.ref !== undefined) this.inflight--
      this.events.error(frame.message ?? text)
    }
  }

  close (): void {
    this.socket.terminate()
  }
}

export async function openWsPublisher (url: string, headers: Record<string, string>, events: PublisherEvents): Promise<Publisher> {
  const socket = new WebSocket(url, { headers, perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`publisher: no subscribed frame from ${url}`)) }, openTimeoutMs)
    socket.once('message', (data: Buffer) => {
      clearTimeout(timer)
      if (data.toString().startsWith('{"type":"subscribed"')) resolve()
      else reject(new Error(`publisher: first frame ${data.toString().slice(0, 200)}`))
    })
    socket.once('unexpected-response', (_request, response) => {
      clearTimeout(timer)
      reject(new Error(`publisher: upgrade refused with ${response.statusCode ?? '?'}`))
    })
    socket.once('error', (error) => { clearTimeout(timer); reject(error) })
  })
  socket.on('error', (error) => { events.error(`publisher socket: ${error.message}`) })
  socket.on('close', (code) => { if (code !== 1005 && code !== 1006) events.error(`publisher closed with ${code}`) })
  return new WsPublisher(socket, events)
}

class SocketIoPublisher implements Publisher {
  inflight = 0
  private readonly acked = (): void => {
    this.inflight--
    this.events.ack()
  }

  constructor (private readonly socket: Socket, private readonly events: PublisherEvents) {}

  publish (topic: string, text: string): void {
    this.inflight++
    this.socket.emit('publish', { topic, text }, this.acked)
  }

  close (): void {
    this.socket.disconnect()
  }
}

export async function openSocketIoPublisher (url: string, topic: string, events: PublisherEvents): Promise<Publisher> {
  const socket = io(url, { transports: ['websocket'], query: { topic, user: 'bench_pub' }, forceNew: true, reconnection: false })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`publisher: no subscribed event from ${url}`)) }, openTimeoutMs)
    socket.once('subscribed', () => { clearTimeout(timer); resolve() })
    socket.once('connect_error', (error) => { clearTimeout(timer); reject(error) })
  })
  socket.on('disconnect', (reason) => { if (reason !== 'io client disconnect') events.error(`publisher disconnected: ${reason}`) })
  return new SocketIoPublisher(socket, events)
}
