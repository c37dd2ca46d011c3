import t from 'tap'
import { Emitter } from '../../client/src/events.js'

/** The typed emitter the client tells its events with. */

interface TestEvents { tick: { n: number }, other: string }

class TestEmitter extends Emitter<TestEvents> {
  tell<K extends keyof TestEvents> (type: K, event: TestEvents[K]): void { this.emit(type, event) }
}

t.test('listeners by type, removed by what `on` returns', async (t) => {
  const emitter = new TestEmitter()
  const seen: number[] = []
  const off = emitter.on('tick', (event) => { seen.push(event.n) })
  emitter.tell('tick', { n: 1 })
  emitter.tell('other', 'not a tick')
  off()
  emitter.tell('tick', { n: 2 })
  t.same(seen, [1])
})

t.test('once: the next event that is accepted', async (t) => {
  const emitter = new TestEmitter()
  const third = emitter.once('tick', (event) => event.n === 3)
  for (let n = 1; n <= 4; n++) emitter.tell('tick', { n })
  t.same(await third, { n: 3 })
})

t.test('a listener that throws keeps neither the others nor the emitter from going on', async (t) => {
  const emitter = new TestEmitter()
  const seen: number[] = []
  emitter.on('tick', () => { throw new Error('a listener\'s bug') })
  emitter.on('tick', (event) => { seen.push(event.n) })
  // Thrown again on its own, in a microtask, where the program sees it: caught here instead.
  const rethrown: Array<() => void> = []
  const queue = globalThis.queueMicrotask
  globalThis.queueMicrotask = (callback) => { rethrown.push(callback) }
  try {
    emitter.tell('tick', { n: 1 })
  } finally {
    globalThis.queueMicrotask = queue
  }
  t.same(seen, [1])
  t.equal(rethrown.length, 1)
  t.throws(() => { rethrown[0]?.() }, { message: 'a listener\'s bug' })
})
