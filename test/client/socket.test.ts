import t from 'tap'
import { Socket, type WebSocketClass } from '../../client/src/socket.js'

/** The socket wrapper over a stand-in WebSocket class: how it is built, what it reads, how it tells a close. */

interface Made { url: string, options: unknown, sent: string[], fire: (type: string, event: object) => void }

/** A WebSocket class that records how it was made and lets the test fire its events. */
function fakeWebSocket (): { WebSocket: WebSocketClass, made: Made[] } {
  const made: Made[] = []
  class FakeWebSocket extends EventTarget {
    readyState = 0
    readonly record: Made
    constructor (url: string, ...rest: unknown[]) {
      super()
      this.record = { url, options: rest[0], sent: [], fire: (type, event) => { this.dispatchEvent(Object.assign(new Event(type), event)) } }
      made.push(this.record)
    }

    send (data: string): void { this.record.sent.push(data) }
    close (): void { this.readyState = 3 }
  }
  return { WebSocket: FakeWebSocket, made }
}

t.test('headers only when there are any: the browser\'s WebSocket takes none', async (t) => {
  const { WebSocket, made } = fakeWebSocket()
  const listeners = { open: () => {}, frame: () => {}, close: () => {} }
  const plain = new Socket({ WebSocket, url: 'ws://h/chat', listeners })
  t.teardown(() => { plain.close(1000, '') })
  const withHeaders = new Socket({ WebSocket, url: 'ws://h/chat', headers: { authorization: 'Bearer k' }, listeners })
  t.teardown(() => { withHeaders.close(1000, '') })
  t.same(made.map((socket) => socket.options), [undefined, { headers: { authorization: 'Bearer k' } }])
})

t.test('frames are read as JSON objects with a type; anything else is skipped', async (t) => {
  const { WebSocket, made } = fakeWebSocket()
  const frames: unknown[] = []
  const closes: unknown[] = []
  let opened = 0
  const socket = new Socket({ WebSocket, url: 'ws://h/chat', listeners: { open: () => { opened++ }, frame: (frame) => { frames.push(frame) }, close: (close) => { closes.push(close) } } })
  const fake = made[0]
  if (fake === undefined) throw new Error('no socket made')
  t.notOk(socket.open)
  socket.send({ type: 'subscribe' })
  t.same(fake.sent, [], 'nothing is sent before it opens')
  ;(socket.socket as unknown as { readyState: number }).readyState = 1
  fake.fire('open', {})
  t.equal(opened, 1)
  socket.send({ type: 'publish', ref: 'r' })
  t.same(fake.sent, ['{"type":"publish","ref":"r"}'])
  for (const data of ['{"type":"ack","ref":"r"}', 'not json', '[1]', '{"no":"type"}', new ArrayBuffer(2)]) fake.fire('message', { data })
  t.same(frames, [{ type: 'ack', ref: 'r' }])

  fake.fire('error', { message: 'Unexpected server response: 401' })
  fake.fire('close', { code: 1006, reason: '' })
  fake.fire('close', { code: 1006, reason: '' })
  t.same(closes, [{ code: 1006, reason: '', refusedStatus: 401 }], 'told once, with the status of the refused upgrade')
  fake.fire('message', { data: '{"type":"late"}' })
  t.equal(frames.length, 1, 'nothing after the close')
})

t.test('timers on a socket die with it; closing from this side is told at once', async (t) => {
  const { WebSocket } = fakeWebSocket()
  const closes: unknown[] = []
  const socket = new Socket({ WebSocket, url: 'ws://h/chat', listeners: { open: () => {}, frame: () => {}, close: (close) => { closes.push(close) } } })
  let fired = false
  socket.later(0, () => { fired = true })
  const ran = new Promise<void>((resolve) => { socket.later(0, resolve) })
  await ran
  t.ok(fired, 'runs while open')
  fired = false
  socket.later(0, () => { fired = true })
  socket.close(1000, 'bye')
  t.same(closes, [{ code: 1000, reason: 'bye' }])
  await new Promise<void>((resolve) => { setTimeout(resolve, 0) })
  t.notOk(fired, 'cleared by the close')
  socket.later(0, () => { t.fail('not after the close') })
})
