import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'ws'
import { CanopyClient, type ClientOptions, type Message, type StateChange, type WebSocketClass } from '../../client/src/index.js'

/**
 * What the tests of the client library share: a WebSocket class that records what the
 * library sends on each socket (and can cut a socket), and a client that counts what it is
 * told, on a server the test runs.
 */

/** Reconnection delays for tests: the library's own backoff, short, so a test waits little. */
export const fastBackoff = { firstDelayMs: 20, maxDelayMs: 200 }

export interface SentFrame { socket: number, type: string, topic?: string, since?: number, ref?: string }

/**
 * ws's WebSocket, recording every frame the library sends, with the number of the socket it
 * went on (1, 2, …), and telling `onSend` of each as it goes.
 */
export function recordingWebSocket (onSend: (frame: SentFrame) => void = () => {}): { WebSocket: WebSocketClass, sockets: WebSocket[], sent: SentFrame[] } {
  const sockets: WebSocket[] = []
  const sent: SentFrame[] = []
  class RecordingWebSocket extends WebSocket {
    readonly number: number
    constructor (...args: ConstructorParameters<typeof WebSocket>) {
      super(...args)
      sockets.push(this)
      this.number = sockets.length
    }

    override send (data: unknown, ...rest: unknown[]): void {
      const frame = { socket: this.number, ...JSON.parse(String(data)) as Omit<SentFrame, 'socket'> }
      sent.push(frame)
      onSend(frame)
      ;(super.send as (...args: unknown[]) => void)(data, ...rest)
    }
  }
  return { WebSocket: RecordingWebSocket, sockets, sent }
}

/** The last socket the library opened; throws when it opened none. */
export function lastSocket (sockets: WebSocket[]): WebSocket {
  const socket = sockets.at(-1)
  if (socket === undefined) throw new Error('no socket was opened')
  return socket
}

/** A client of the server at `url`, closed when the test ends, with what it was told recorded. */
export function watchedClient (t: { teardown(fn: () => unknown): void }, options: ClientOptions): {
  client: CanopyClient
  /** Message ids told, per topic, in the order told. */
  told: Map<string, number[]>
  states: StateChange[]
  /** Resolves once `topic` has been told `count` messages. */
  messages: (topic: string, count: number) => Promise<void>
} {
  const client = new CanopyClient({ backoff: fastBackoff, ...options })
  t.teardown(() => { client.close() })
  const told = new Map<string, number[]>()
  const states: StateChange[] = []
  client.on('state', (state) => { states.push(state) })
  client.on('message', (message: Message) => {
    const ids = told.get(message.topic) ?? []
    ids.push(message.id)
    told.set(message.topic, ids)
  })
  const messages = async (topic: string, count: number): Promise<void> => {
    if ((told.get(topic)?.length ?? 0) >= count) return
    await client.once('message', (message) => message.topic === topic && (told.get(topic)?.length ?? 0) >= count)
  }
  return { client, told, states, messages }
}

/** 1, 2, …, n. */
export function ids (n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1)
}

/** Publishes `texts` over HTTP as the session of `cookie`, all at once; resolves when every one is stored. */
export async function publishOverHttp (app: FastifyInstance, cookie: string, topic: string, texts: string[]): Promise<void> {
  await Promise.all(texts.map(async (text) => {
    const response = await app.inject({ method: 'POST', url: `/api/topics/${topic}/messages`, headers: { cookie }, payload: { text, ref: randomUUID() } })
    if (response.statusCode !== 201) throw new Error(`publishing: ${response.statusCode} ${response.body}`)
  }))
}
