import t from 'tap'
import { maxPublishesInFlight, newRef, Outbox, storageOutbox, type OutboxEntry } from '../../client/src/outbox.js'

/** The outbox without a socket: the bound in flight, resends, order, the store. */

const entry = (n: number): OutboxEntry => ({ type: 'publish', topic: 't', text: `m${n}`, ref: `r${n}` })
const refs = (entries: OutboxEntry[]): string[] => entries.map((entry) => entry.ref)

t.test('at most 32 in flight; an ack lets the next go', async (t) => {
  t.equal(maxPublishesInFlight, 32)
  const outbox = new Outbox()
  for (let n = 0; n < 40; n++) outbox.add(entry(n))
  const first = outbox.takeSendable()
  t.same(refs(first), Array.from({ length: 32 }, (_, n) => `r${n}`), 'the first 32, in order')
  t.same(outbox.takeSendable(), [], 'nothing more while 32 are in flight')
  t.ok(outbox.remove('r5'))
  t.same(refs(outbox.takeSendable()), ['r32'])
  t.equal(outbox.inFlight, 32)
  t.equal(outbox.size, 39)
})

t.test('a refused publish stays in flight until its wait is over, then goes first', async (t) => {
  const outbox = new Outbox({ maxInFlight: 2 })
  for (let n = 0; n < 3; n++) outbox.add(entry(n))
  outbox.takeSendable()
  outbox.retry('r1')
  t.same(outbox.takeSendable(), [], 'waiting counts in flight')
  outbox.due('r1')
  outbox.remove('r0')
  t.same(refs(outbox.takeSendable()), ['r1', 'r2'], 'the refused one again, then the next')
})

t.test('a drop sends everything again, in order, with the same refs', async (t) => {
  const outbox = new Outbox({ maxInFlight: 2 })
  for (let n = 0; n < 3; n++) outbox.add(entry(n))
  outbox.takeSendable()
  outbox.retry('r1')
  outbox.dropped()
  t.equal(outbox.inFlight, 0)
  t.same(refs(outbox.takeSendable()), ['r0', 'r1'])
})

t.test('restored entries go before the new ones; settled ones leave the store', async (t) => {
  const stored = new Map<string, OutboxEntry>()
  const outbox = new Outbox({
    store: { load: () => [], put: (entry) => { stored.set(entry.ref, entry) }, delete: (ref) => { stored.delete(ref) } }
  })
  outbox.add(entry(9))
  outbox.restore([entry(1), entry(2), entry(9)])
  t.same(refs(outbox.entries()), ['r1', 'r2', 'r9'], 'kept ones first, none twice')
  t.same([...stored.keys()], ['r9'], 'restoring stores nothing again')
  outbox.takeSendable()
  outbox.remove('r9')
  t.same([...stored.keys()], [])
})

t.test('a publish made before the store was read, and so read back from it, keeps its promise', async (t) => {
  const outbox = new Outbox()
  let acked: unknown
  outbox.add(entry(1), { resolve: (ack) => { acked = ack }, reject: () => {} })
  outbox.restore([entry(0), entry(1)])
  t.same(refs(outbox.entries()), ['r0', 'r1'])
  outbox.takeSendable()
  outbox.remove('r1')?.settle?.resolve({ id: 7, at: 'now' })
  t.same(acked, { id: 7, at: 'now' })
})

t.test('abandoning rejects every promise; forgetting also empties the store', async (t) => {
  const stored = new Set<string>()
  const store = { load: () => [], put: (entry: OutboxEntry) => { stored.add(entry.ref) }, delete: (ref: string) => { stored.delete(ref) } }
  const rejected: string[] = []
  for (const forget of [false, true]) {
    const outbox = new Outbox({ store })
    outbox.add(entry(forget ? 2 : 1), { resolve: () => {}, reject: (error) => { rejected.push(error.message) } })
    outbox.abandon(new Error(`forget ${forget}`), { forget })
    t.equal(outbox.size, 0)
  }
  t.same(rejected, ['forget false', 'forget true'])
  t.same([...stored], ['r1'], 'kept for a later client unless forgotten')
})

t.test('storageOutbox keeps entries in one JSON array, shared with whoever else writes it', async (t) => {
  const items = new Map<string, string>()
  const storage = { getItem: (key: string) => items.get(key) ?? null, setItem: (key: string, value: string) => { items.set(key, value) } }
  const tab1 = storageOutbox(storage)
  const tab2 = storageOutbox(storage)
  tab1.put(entry(1))
  tab2.put(entry(2))
  t.same(refs(await tab1.load()), ['r1', 'r2'], 'neither tab drops the other\'s')
  tab1.delete('r2')
  t.same(refs(await tab2.load()), ['r1'])
  t.ok(items.has('canopy.outbox'))

  items.set('canopy.outbox', '{not json')
  t.same(await tab1.load(), [], 'a damaged array starts afresh')
  items.set('canopy.outbox', JSON.stringify([entry(3), { type: 'publish' }, 'junk']))
  t.same(refs(await tab1.load()), ['r3'], 'what is not an entry is dropped')

  const broken = storageOutbox({ getItem: () => { throw new Error('storage is off') }, setItem: () => { throw new Error('full') } })
  t.same(await broken.load(), [])
  broken.put(entry(4))
  broken.delete('r4')
  t.pass('storage that is off throws nothing')
})

t.test('refs are random and within the protocol\'s 64 characters', async (t) => {
  const made = new Set(Array.from({ length: 100 }, () => newRef()))
  t.equal(made.size, 100)
  for (const ref of made) t.match(ref, /^[0-9a-f]{32}$/)
})
