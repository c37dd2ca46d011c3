import t from 'tap'
import type { Queryable } from '../../src/db/database.js'
import type { MessageFrame } from '../../src/protocol.js'
import { PublishQueue, PublishRefusedError, type PublishQueueOptions } from '../../src/publish-queue.js'
import { TimeoutError } from '../../src/timeout.js'

/**
 * The publish queue against a fake database: each batch statement is held until the test
 * answers it, so what shares a statement is decided by the test, not by timing.
 */
interface Statement { texts: string[], answer(): void, refuse(sqlState: string): void }

function fakeDatabase (): { db: Queryable, statements: Statement[], next(): Promise<Statement> } {
  const statements: Statement[] = []
  const waiters: Array<(statement: Statement) => void> = []
  let nextId = 1
  const db: Queryable = {
    async query<Row extends object>(_text: string, params?: unknown[], name?: string): Promise<Row[]> {
      if (name !== 'canopy_store_batch') throw new Error(`unexpected statement ${name ?? _text}`)
      const texts = (params?.[3] ?? []) as string[]
      return await new Promise<Row[]>((resolve, reject) => {
        const statement: Statement = {
          texts,
          answer: () => {
            const firstId = nextId
            nextId += texts.length
            resolve([{ topic: 'q', first_id: firstId }] as unknown as Row[])
          },
          refuse: (sqlState) => { reject(Object.assign(new Error('invalid byte sequence'), { code: sqlState })) }
        }
        statements.push(statement)
        const waiter = waiters.shift()
        if (waiter !== undefined) waiter(statement)
      })
    }
  }
  let taken = 0
  const next = async (): Promise<Statement> => {
    const index = taken++
    const ready = statements[index]
    if (ready !== undefined) return ready
    return await new Promise((resolve) => { waiters.push(resolve) })
  }
  return { db, statements, next }
}

function queueOn (db: Queryable, options: Partial<PublishQueueOptions> = {}): { queue: PublishQueue, committed: MessageFrame[], batchSizes: number[] } {
  const committed: MessageFrame[] = []
  const batchSizes: number[] = []
  const queue = new PublishQueue({
    db,
    onCommitted: (message) => { committed.push(message) },
    onStatement: (_seconds, batchSize) => { batchSizes.push(batchSize) },
    maxQueueWaitMs: 60_000,
    ...options
  })
  t.teardown(() => { queue.stop() })
  return { queue, committed, batchSizes }
}

const message = (text: string, ref?: string): { topic: string, authorId: number, author: string, text: string, ref: string | undefined } =>
  ({ topic: 'q', authorId: 1, author: 'ann', text, ref })

t.test('publishes that arrive while a statement runs share the next one (group commit)', async (t) => {
  const { db, next } = fakeDatabase()
  const { queue, committed, batchSizes } = queueOn(db)
  const first = queue.add(message('a'))
  const running = await next()
  const rest = ['b', 'c', 'd'].map(async (text) => await queue.add(message(text)))
  running.answer()
  ;(await next()).answer()
  const stored = await Promise.all([first, ...rest])
  t.same(stored.map((s) => [s.message.text, s.message.id, s.duplicate]), [['a', 1, false], ['b', 2, false], ['c', 3, false], ['d', 4, false]])
  t.same(batchSizes, [1, 3], 'two statements: the first alone, the three that waited together')
  await new Promise((resolve) => { setImmediate(resolve) })
  t.same(committed.map((m) => m.text), ['a', 'b', 'c', 'd'], 'each committed message handed on once, in order')
})

t.test('a publish is answered before its message is handed on: an ack goes out first', async (t) => {
  const { db, next } = fakeDatabase()
  const order: string[] = []
  const { queue } = queueOn(db, { onCommitted: (m) => { order.push(`handed on ${m.text}`) } })
  const acked = (async () => {
    const stored = await queue.add(message('x'))
    order.push(`acked ${stored.message.text}`)
  })()
  ;(await next()).answer()
  await acked
  await new Promise((resolve) => { setImmediate(resolve) })
  t.same(order, ['acked x', 'handed on x'])
})

t.test('a batch the database refuses is split in halves until the bad message fails alone', async (t) => {
  const { db, next } = fakeDatabase()
  const { queue, committed, batchSizes } = queueOn(db)
  const blocker = queue.add(message('first'))
  const running = await next()
  const texts = ['m0', 'm1', 'm2', 'm3', 'm4', 'bad', 'm6', 'm7']
  const results = texts.map(async (text) => await queue.add(message(text)).then(() => 'stored', (error: unknown) => error))
  running.answer()
  await blocker
  // Each statement holding the bad message is refused; every other one commits.
  for (let answered = 0; answered < 7; answered++) {
    const statement = await next()
    if (statement.texts.includes('bad')) statement.refuse('22021')
    else statement.answer()
  }
  const outcomes = await Promise.all(results)
  t.same(batchSizes, [1, 8, 4, 4, 2, 1, 1, 2], 'halves, in order: the refused 8 as 4 + 4, the refused 4 as 2 + 2, the refused 2 as 1 + 1')
  outcomes.forEach((outcome, i) => {
    if (texts[i] === 'bad') t.ok(outcome instanceof PublishRefusedError, 'the bad message is refused, alone')
    else t.equal(outcome, 'stored', `${texts[i] ?? ''} is stored`)
  })
  await new Promise((resolve) => { setImmediate(resolve) })
  t.same(committed.map((m) => m.text), ['first', 'm0', 'm1', 'm2', 'm3', 'm4', 'm6', 'm7'], 'the others reach the bus, in order')
})

t.test('a statement not answered within its bound is given up: its publishes fail, and commits stall', async (t) => {
  const { db, next } = fakeDatabase()
  const { queue } = queueOn(db, { maxStatementWaitMs: 20 })
  const publish = queue.add(message('stuck'))
  await next() // never answered
  const error = await publish.then(() => undefined, (error: unknown) => error)
  t.ok(error instanceof TimeoutError, 'rejected with the bound\'s timeout')
  t.equal(queue.stalled, true, 'commits stall until a statement succeeds')
  const after = queue.add(message('after'))
  ;(await next()).answer()
  await after
  t.equal(queue.stalled, false, 'a statement that succeeds ends the stall')
})
