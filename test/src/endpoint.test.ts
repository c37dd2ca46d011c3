import t from 'tap'
import * as ws from 'ws'
import { WireFrames } from '../../src/wire-frame.js'

// ws's own frame parser, as a client runs it (its types leave it out).
interface FrameReceiver {
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): void
  on(event: 'error', listener: (error: Error) => void): void
  write(chunk: Buffer): void
}
const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean, maxPayload: number }) => FrameReceiver }

t.test('a message framed once for many sockets is the text frame a client reads, at every length form', async (t) => {
  const wireFrames = new WireFrames()
  const wireFrame = (payload: Buffer): Buffer => wireFrames.of(payload)
  for (const length of [0, 1, 125, 126, 8_000, 65_535, 65_536, 70_000]) {
    const payload = Buffer.from('x'.repeat(length))
    const received = new Promise<{ data: Buffer, isBinary: boolean }>((resolve, reject) => {
      // A client's receiver: it expects unmasked frames from a server.
      const receiver = new Receiver({ isServer: false, maxPayload: 1 << 20 })
      receiver.on('message', (data: Buffer, isBinary: boolean) => { resolve({ data, isBinary }) })
      receiver.on('error', reject)
      receiver.write(wireFrame(payload))
    })
    const { data, isBinary } = await received
    t.equal(isBinary, false, `${length} bytes: a text frame`)
    t.ok(data.equals(payload), `${length} bytes: the same payload`)
  }
  const payload = Buffer.from('{"type":"message"}')
  t.equal(wireFrame(payload), wireFrame(payload), 'framed once for all the sockets it goes to')
})
