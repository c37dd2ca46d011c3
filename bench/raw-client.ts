import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'

/**
 * A minimal WebSocket subscriber on a raw TCP socket, so that a thousand of them cost the
 * load generator little: it writes the upgrade request, parses server frames in place from
 * one shared read buffer, answers pings, and hands each text frame to a sink. It speaks
 * the three systems' framings: Canopy's JSON frames, the limit's relayed frames (the same
 * shape), and Engine.IO/Socket.IO v4 packets over the websocket transport.
 */

export type Framing = 'json' | 'socketio'

export interface SubscriberSink {
  /**
   * A text frame carrying a bench message: `marker` is where its timestamp marker starts,
   * `end` where the frame ends; `now` is performance.now() when it was read.
   */
  message(payload: Buffer, marker: number, end: number, now: number): void
}

/** What every bench message text carries: `~T<microseconds of the load generator's clock>~`. */
export const timestampMarker = Buffer.from('~T')
const tilde = 0x7e

/** The load generator's one clock, in microseconds. */
export function nowMicros (): number {
  return Math.round(performance.now() * 1000)
}

/** The send time in a message, or -1: the digits after the marker at `marker`. */
export function readTimestamp (payload: Buffer, marker: number, end: number): number {
  let value = 0
  for (let i = marker + 2; i < end; i++) {
    const c = payload[i] as number
    if (c === tilde) return value
    value = value * 10 + (c - 48)
  }
  return -1
}

/** One reusable read buffer for every subscriber: each read is parsed before the next one. */
const readBuffer = Buffer.allocUnsafe(256 * 1024)

const subscribedJson = Buffer.from('{"type":"subscribed"')
const subscribedSocketIo = Buffer.from('42["subscribed"')
const headerEnd = Buffer.from('\r\n\r\n')

export interface RawSubscriberOptions {
  host: string
  port: number
  /** Path and query of the upgrade request. */
  path: string
  framing: Framing
  headers?: Record<string, string>
  sink: SubscriberSink
  /** Keep the payload of the subscribed frame (connect-history checks its history). */
  keepSubscribed?: boolean
}

const enum State { handshake, opening, ready, closed }

export class RawSubscriber {
  private readonly socket: Socket
  private state = State.handshake
  private carry: Buffer | undefined
  private readonly sink: SubscriberSink
  private readonly framing: Framing
  private readonly keepSubscribed: boolean
  private resolveReady: (() => void) | undefined
  private rejectReady: ((error: Error) => void) | undefined
  /** Bench messages received. */
  received = 0
  /** The subscribed frame's payload, when asked to keep it. */
  subscribedPayload: string | undefined
  /** Why the connection ended, when it did. */
  closeReason: string | undefined
  /** performance.now() when the upgrade request was written, and when subscribed arrived. */
  requestedAt = 0
  readyAt = 0
  readonly ready: Promise<void>

  constructor (options: RawSubscriberOptions) {
    this.sink = options.sink
    this.framing = options.framing
    this.keepSubscribed = options.keepSubscribed === true
    this.ready = new Promise((resolve, reject) => { this.resolveReady = resolve; this.rejectReady = reject })
    // Nobody may be waiting yet: a failure is kept in closeReason and surfaces through `ready`.
    this.ready.catch(() => {})
    const key = randomBytes(16).toString('base64')
    const extra = Object.entries(options.headers ?? {}).map(([name, value]) => `${name}: ${value}\r\n`).join('')
    const request = `GET ${options.path} HTTP/1.1\r\nHost: ${options.host}:${options.port}\r\n` +
      `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`
    this.socket = connect({
      host: options.host,
      port: options.port,
      noDelay: true,
      onread: { buffer: readBuffer, callback: (length: number, buffer: Uint8Array) => { this.read(buffer as Buffer, length); return true } }
    })
    this.socket.once('connect', () => {
      this.requestedAt = performance.now()
      this.socket.write(request)
    })
    this.socket.on('error', (error) => { this.end(`socket error: ${error.message}`) })
    this.socket.on('close', () => { this.end('the server closed the connection') })
  }

  get isReady (): boolean {
    return this.state === State.ready
  }

  /** Closes at once (no closing handshake: the bench is done with it). */
  destroy (): void {
    this.state = State.closed
    this.socket.destroy()
  }

  private end (reason: string): void {
    if (this.state === State.closed) return
    this.state = State.closed
    this.closeReason = reason
    this.rejectReady?.(new Error(reason))
    this.socket.destroy()
  }

  private read (buffer: Buffer, length: number): void {
    let data = buffer.subarray(0, length)
    if (this.carry !== undefined) {
      data = Buffer.concat([this.carry, data])
      this.carry = undefined
    }
    let offset = 0
    if (this.state === State.handshake) {
      const at = data.indexOf(headerEnd)
      if (at < 0) { this.carry = Buffer.from(data); return }
      const statusLine = data.toString('latin1', 0, data.indexOf('\r\n'))
      if (!/^HTTP\/1\.1 101 /.test(statusLine)) {
        this.end(`upgrade refused: ${statusLine}`)
        return
      }
      this.state = State.opening
      offset = at + 4
    }
    const now = performance.now()
    while (this.state !== State.closed) {
      const available = data.length - offset
      if (available < 2) break
      const first = data[offset] as number
      const second = data[offset + 1] as number
      let payloadLength = second & 0x7f
      let headerLength = 2
      if (payloadLength === 126) {
        if (available < 4) break
        payloadLength = data.readUInt16BE(offset + 2)
        headerLength = 4
      } else if (payloadLength === 127) {
        if (available < 10) break
        payloadLength = Number(data.readBigUInt64BE(offset + 2))
        headerLength = 10
      }
      if (available < headerLength + payloadLength) break
      const start = offset + headerLength
      const end = start + payloadLength
      offset = end
      const opcode = first & 0x0f
      if ((first & 0x80) === 0 || opcode === 0) { this.end('a fragmented frame (not expected from these servers)'); return }
      if (opcode === 0x1) this.text(data, start, end, now)
      else if (opcode === 0x9) this.send(0xa, Buffer.from(data.subarray(start, end)))
      else if (opcode === 0x8) {
        const code = payloadLength >= 2 ? data.readUInt16BE(start) : 1005
        this.end(`closed by the server with ${code} ${data.toString('utf8', start + 2, end)}`)
        return
      }
    }
    if (offset < data.length && this.state !== State.closed) this.carry = Buffer.from(data.subarray(offset))
  }

  private text (data: Buffer, start: number, end: number, now: number): void {
    if (this.state === State.ready) {
      if (this.framing === 'socketio' && end - start === 1 && data[start] === 0x32) { this.sendText('3'); return }
      const marker = data.indexOf(timestampMarker, start)
      if (marker < 0 || marker >= end) return
      this.received++
      this.sink.message(data, marker, end, now)
      return
    }
    if (this.framing === 'json') {
      if (data.compare(subscribedJson, 0, subscribedJson.length, start, Math.min(end, start + subscribedJson.length)) === 0) {
        this.subscribed(data, start, end, now)
      } else if (data.toString('utf8', start, Math.min(end, start + 20)).startsWith('{"type":"error"')) {
        this.end(`error frame before subscribed: ${data.toString('utf8', start, end)}`)
      }
      return
    }
    // Engine.IO: 0 open → we connect to the main namespace; 40 connected; 2 ping; 42 event.
    const packet = data.toString('utf8', start, Math.min(end, start + 2))
    if (packet.startsWith('0')) this.sendText('40')
    else if (packet === '2') this.sendText('3')
    else if (packet === '44' || packet === '41') this.end(`Socket.IO refused the connection: ${data.toString('utf8', start, end)}`)
    else if (data.compare(subscribedSocketIo, 0, subscribedSocketIo.length, start, Math.min(end, start + subscribedSocketIo.length)) === 0) {
      this.subscribed(data, start, end, now)
    }
  }

  private subscribed (data: Buffer, start: number, end: number, now: number): void {
    this.state = State.ready
    this.readyAt = now
    if (this.keepSubscribed) this.subscribedPayload = data.toString('utf8', start, end)
    this.resolveReady?.()
  }

  private sendText (text: string): void {
    this.send(0x1, Buffer.from(text))
  }

  /** A client frame: always masked. */
  private send (opcode: number, payload: Buffer): void {
    if (payload.length > 125) return
    const frame = Buffer.allocUnsafe(6 + payload.length)
    frame[0] = 0x80 | opcode
    frame[1] = 0x80 | payload.length
    const mask = randomBytes(4)
    mask.copy(frame, 2)
    for (let i = 0; i < payload.length; i++) frame[6 + i] = (payload[i] as number) ^ (mask[i & 3] as number)
    this.socket.write(frame)
  }
}
