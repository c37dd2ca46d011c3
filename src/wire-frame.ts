/**
 * Pre-framed messages: a message that goes to many connections is framed once (a server's
 * frames are not masked, so its bytes are the same for every connection) and written to each
 * TCP socket as one chunk, past ws's framing of every send. That framing allocated more per
 * delivery than the delivery itself (young-generation collections every 0.4 s in the
 * latency scenario). Only for sockets where no extension transforms frames: permessage-deflate
 * is off (plugins/websocket.ts), and a socket that negotiated one goes through ws.
 *
 * One cache per endpoint: it keeps the last payload framed, which is the one being fanned
 * out to every subscriber of a topic.
 */
export class WireFrames {
  private lastPayload: Buffer | undefined
  private lastWire: Buffer | undefined

  /** The payload as one unmasked text frame, header and all; framed once while it repeats. */
  of (payload: Buffer): Buffer {
    if (payload === this.lastPayload && this.lastWire !== undefined) return this.lastWire
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
    this.lastPayload = payload
    this.lastWire = wire
    return wire
  }
}
