import t from 'tap'
import type { FastifyBaseLogger } from 'fastify'
import type { Queryable } from '../../src/db/database.js'
import { fillPageSize, MessageOrder, type InOrderReceiver, type TopicSequence } from '../../src/message-order.js'
import type { MessageFrame } from '../../src/protocol.js'

const at = new Date('2025-01-02T03:04:05.678Z')
const frame = (id: number): MessageFrame => ({ type: 'message', topic: 'room', id, author: 'ann', text: `m${id}`, at: at.toISOString() })

/** A table of one topic's messages 1…lastId, answering the gap reads (afterId, toId, limit) and counting them. */
class FakeTable implements Queryable {
  reads: Array<{ after: number, upTo: number | null }> = []
  failNext = 0
  constructor (public lastId: number) {}
  async query<Row extends object>(_text: string, params?: unknown[]): Promise<Row[]> {
    const [, after, upTo, limit] = params as [string, number, number | null, number]
    this.reads.push({ after, upTo })
    if (this.failNext > 0) {
      this.failNext--
      throw new Error('the database went away')
    }
    const rows = []
    for (let id = after + 1; id <= Math.min(upTo ?? this.lastId, this.lastId) && rows.length < limit; id++) {
      rows.push({ topic: 'room', id, author: 'ann', text: `m${id}`, at })
    }
    return rows as Row[]
  }
}

const silent = { warn () {}, info () {}, error () {}, debug () {} } as unknown as FastifyBaseLogger

/** An order over a fake table, with one topic, recording the ids it passes on. */
function orderOver (table: FakeTable): { order: MessageOrder<TopicSequence>, topic: TopicSequence, passed: number[], next: () => Promise<void> } {
  const topic: TopicSequence = { lastId: undefined, pending: [], wanted: 0, readToEnd: false, filling: false }
  const passed: number[] = []
  let wake: (() => void) | undefined
  const receiver: InOrderReceiver<TopicSequence> = {
    fanOut (inOrder, message) {
      // lastId is the message's when it is passed on: a -id says it was not.
      passed.push(inOrder.lastId === message.id ? message.id : -message.id)
      wake?.()
    },
    isCurrent: (name, current) => name === 'room' && current === topic
  }
  const order = new MessageOrder({ db: table, log: silent, receiver })
  /** Resolves at the next message passed on. */
  const next = async (): Promise<void> => { await new Promise<void>((resolve) => { wake = resolve }) }
  return { order, topic, passed, next }
}

t.test('the next message is passed on at once, without a read', async (t) => {
  const table = new FakeTable(0)
  const { order, topic, passed } = orderOver(table)
  order.startAt('room', topic, 0)
  order.arrive('room', topic, frame(1))
  order.arrive('room', topic, frame(2))
  t.same(passed, [1, 2])
  order.arrive('room', topic, frame(2))
  order.arrive('room', topic, frame(1))
  t.same(passed, [1, 2], 'what was passed on is never passed on again')
  t.same(table.reads, [])
})

t.test('messages that arrive before the topic\'s start is known wait for it', async (t) => {
  const table = new FakeTable(0)
  const { order, topic, passed } = orderOver(table)
  order.arrive('room', topic, frame(6))
  order.arrive('room', topic, frame(5))
  t.same(passed, [])
  order.startAt('room', topic, 4)
  t.same(passed, [5, 6], 'in id order')
  t.same(table.reads, [])
})

t.test('a message ahead of a gap waits for it; a gap filled within the turn needs no read', async (t) => {
  const table = new FakeTable(3)
  const { order, topic, passed } = orderOver(table)
  order.startAt('room', topic, 1)
  order.arrive('room', topic, frame(3))
  t.same(passed, [])
  order.arrive('room', topic, frame(2))
  t.same(passed, [], 'both wait for the fill, deferred by a turn')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(passed, [2, 3])
  t.same(table.reads, [], 'which found nothing missing')
})

t.test('a gap that does not fill by itself is read from the table, then what waited follows, each once', async (t) => {
  const table = new FakeTable(5)
  const { order, topic, passed, next } = orderOver(table)
  order.startAt('room', topic, 1)
  order.arrive('room', topic, frame(5))
  while (passed.length < 4) await next()
  t.same(passed, [2, 3, 4, 5])
  t.same(table.reads, [{ after: 1, upTo: 4 }], 'the gap, and no more')
})

t.test('a hint reads up to it; a catch-up reads to the end, a page at a time', async (t) => {
  const table = new FakeTable(3)
  const { order, topic, passed, next } = orderOver(table)
  order.startAt('room', topic, 0)
  order.wantUpTo('room', topic, 2)
  while (passed.length < 2) await next()
  t.same(table.reads, [{ after: 0, upTo: 2 }])
  table.lastId = 2 * fillPageSize + 10
  order.readToEnd('room', topic)
  while (passed.length < table.lastId) await next()
  t.same(table.reads.slice(1), [{ after: 2, upTo: null }, { after: 2 + fillPageSize, upTo: null }, { after: 2 + 2 * fillPageSize, upTo: null }], 'until a page is not full')
  t.same(passed, Array.from({ length: table.lastId }, (_, i) => i + 1))
})

t.test('a failed read is tried again', async (t) => {
  const table = new FakeTable(2)
  const { order, topic, passed, next } = orderOver(table)
  table.failNext = 1
  // The retry's timer does not hold the process open: this does, meanwhile.
  const open = setInterval(() => {}, 60_000)
  t.teardown(() => { clearInterval(open) })
  order.startAt('room', topic, 0)
  order.wantUpTo('room', topic, 2)
  while (passed.length < 2) await next()
  t.same(passed, [1, 2])
  t.equal(table.reads.length, 2)
})

t.test('a fill for a topic that is gone, or after close, passes nothing on', async (t) => {
  const table = new FakeTable(2)
  const { order, topic, passed } = orderOver(table)
  order.startAt('room', topic, 0)
  order.wantUpTo('room', topic, 2)
  order.close()
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setImmediate(resolve))
  t.same(passed, [])
  t.same(table.reads, [])
})
