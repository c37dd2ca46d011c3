import t from 'tap'
import type { FastifyBaseLogger } from 'fastify'
import { ChatPolicing, type PolicedConnection } from '../../src/chat-policing.js'
import { CloseCode, type ServerFrame } from '../../src/protocol.js'

/** A logger that drops every line. */
const quiet = { info () {}, warn () {}, error () {}, debug () {}, child () { return quiet } } as unknown as FastifyBaseLogger

function connection (): PolicedConnection & { sent: ServerFrame[], closes: Array<[number, string]> } {
  const sent: ServerFrame[] = []
  const closes: Array<[number, string]> = []
  return { reqId: 'req-1', state: { user: { name: 'ann' } }, sent, closes, send (frame) { sent.push(frame) }, close (code, reason) { closes.push([code, reason]) } }
}

function policingAt (clock: { now: number }): ChatPolicing<ReturnType<typeof connection>> {
  const policing = new ChatPolicing<ReturnType<typeof connection>>({ publishRatePerSecond: 10, publishBurst: 20, log: quiet, now: () => clock.now })
  t.teardown(() => { policing.stop() })
  return policing
}

t.test('frames of any kind are limited per connection, never tighter than twice the publish limits', async (t) => {
  const clock = { now: 0 }
  const policing = policingAt(clock)
  t.equal(policing.frameRatePerSecond, 50, 'at least 50 frames per second')
  const a = connection()
  const waits = Array.from({ length: 101 }, () => policing.takeFrame(a))
  t.same(waits.slice(0, 100), Array(100).fill(0), 'a burst of 100 is taken')
  t.ok((waits[100] ?? 0) > 0, 'the 101st waits')
  t.equal(policing.takeFrame(connection()), 0, 'each connection has its own bucket')
})

t.test('a refusal tells the wait; a client that keeps sending without pausing is closed with 1008', async (t) => {
  const clock = { now: 0 }
  const policing = policingAt(clock)
  const a = connection()
  policing.refuse(a, 'over the limit', 500, 'r1')
  t.same(a.sent, [{ type: 'error', code: 'rate_limited', message: 'over the limit', ref: 'r1', retryAfterMs: 500 }])
  policing.refuse(a, 'over the history reads', 300, undefined, 'general')
  t.match(a.sent[1], { code: 'rate_limited', topic: 'general', retryAfterMs: 300 }, 'a subscribe\'s refusal names its topic')
  for (let i = 0; i < 64; i++) policing.refuse(a, 'over the limit', 500, `p${i}`)
  t.same(a.closes, [[CloseCode.policy, 'kept sending without pausing after rate limiting']], 'the 65th publish refused within one pause closes it')
  const b = connection()
  policing.forget(a)
  policing.refuse(b, 'over the limit', 500, 'r1')
  t.same(b.closes, [], 'another connection is judged on its own')
})
