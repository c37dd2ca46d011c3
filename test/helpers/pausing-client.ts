import type { ChatClient } from './chat.js'

export interface PausingRun {
  acked: number
  refusals: number
  pauses: number
}

/**
 * The client most real ones are: it keeps `window` publishes in flight (sent and not acked,
 * waits included), and after a `rate_limited` it keeps no timer per refused ref: it pauses
 * once, for the first refusal's `retryAfterMs`, then sends every refused publish again at
 * once and goes on. Refusals that arrive while it pauses only join the ones to send again.
 * Resolves when all `total` are acked; throws if the socket closes first or an error other
 * than `rate_limited` comes.
 */
export async function publishPausingForTheFirstHint (client: ChatClient, options: { topic: string, total: number, window: number, refPrefix: string }): Promise<PausingRun> {
  const { topic, total, window, refPrefix } = options
  const inFlight = new Set<string>()
  const toResend: string[] = []
  let next = 0
  let pausing = false
  let acked = 0
  let refusals = 0
  let pauses = 0
  const send = (ref: string): void => {
    inFlight.add(ref)
    client.send({ type: 'publish', topic, text: ref, ref })
  }
  const fill = (): void => {
    for (let ref = toResend.shift(); ref !== undefined; ref = toResend.shift()) send(ref)
    while (inFlight.size < window && next < total) send(`${refPrefix}${next++}`)
  }
  fill()
  while (acked < total) {
    const frame = await client.next()
    if (frame.type === 'ack') {
      if (!inFlight.delete(frame.ref)) continue
      acked++
      if (!pausing) fill()
    } else if (frame.type === 'error') {
      if (frame.code !== 'rate_limited' || frame.ref === undefined || frame.retryAfterMs === undefined) {
        throw new Error(`not a rate refusal of a publish: ${JSON.stringify(frame)}`)
      }
      refusals++
      toResend.push(frame.ref)
      if (pausing) continue
      pausing = true
      pauses++
      // The client's own pause (its behaviour under test), not the test waiting for time.
      setTimeout(() => { pausing = false; fill() }, frame.retryAfterMs)
    }
  }
  return { acked, refusals, pauses }
}
