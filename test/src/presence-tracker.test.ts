import t from 'tap'
import type { PresenceChange, PresenceStore } from '../../src/presence-store.js'
import { PresenceTracker, type PresenceAnnouncement, type Schedule } from '../../src/presence-tracker.js'
import type { Subscriber } from '../../src/topic-bus.js'

// The presence state machine of one instance, on a store in memory that behaves as
// src/presence-store.ts does, and graces fired by hand: no database, no clock.

/** Presence rows per instance and the count per user and topic, as Postgres keeps them. */
class MemoryStore implements PresenceStore {
  readonly rows = new Set<string>()
  readonly counts = new Map<string, { user: string, n: number }>()
  readonly instances = new Set<string>()
  /** Every write, in order. */
  readonly writes: string[] = []
  /** Set to make the next statements fail. */
  failing = false
  /** When set, exit waits for it (a statement in flight). */
  exitGate: Promise<void> | undefined
  private readonly names = new Map<number, string>()

  async enter (instanceId: string, topic: string, userId: number, userName: string): Promise<boolean> {
    this.check()
    this.names.set(userId, userName)
    const row = `${instanceId}\n${topic}\n${userId}`
    if (this.rows.has(row)) return false
    this.rows.add(row)
    this.writes.push(`enter ${instanceId} ${topic} ${userName}`)
    const count = this.counts.get(`${topic}\n${userId}`) ?? { user: userName, n: 0 }
    count.n += 1
    this.counts.set(`${topic}\n${userId}`, count)
    return count.n === 1
  }

  async exit (instanceId: string, topic: string, userId: number): Promise<boolean> {
    this.check()
    await this.exitGate
    const row = `${instanceId}\n${topic}\n${userId}`
    if (!this.rows.delete(row)) return false
    this.writes.push(`exit ${instanceId} ${topic} ${this.names.get(userId) ?? ''}`)
    return this.decrement(topic, userId)
  }

  async heartbeat (instanceId: string): Promise<boolean> {
    this.check()
    const made = !this.instances.has(instanceId)
    this.instances.add(instanceId)
    return made
  }

  expired: string[] = []
  async expireIn (instanceId: string, seconds: number): Promise<void> {
    this.check()
    this.expired.push(`${instanceId} ${seconds}`)
  }

  async sweep (options: { instanceId?: string } = {}): Promise<PresenceChange[]> {
    this.check()
    if (options.instanceId !== undefined) this.instances.delete(options.instanceId)
    const left: PresenceChange[] = []
    for (const row of this.rows) {
      const [instanceId = '', topic = '', userId = ''] = row.split('\n')
      if (this.instances.has(instanceId)) continue
      this.rows.delete(row)
      if (this.decrement(topic, Number(userId))) left.push({ topic, user: this.names.get(Number(userId)) ?? '' })
    }
    return left
  }

  present (topic: string): string[] {
    return [...this.counts].filter(([key]) => key.startsWith(`${topic}\n`)).map(([, { user }]) => user).sort()
  }

  private decrement (topic: string, userId: number): boolean {
    const key = `${topic}\n${userId}`
    const count = this.counts.get(key)
    if (count === undefined) return false
    count.n -= 1
    if (count.n > 0) return false
    this.counts.delete(key)
    return true
  }

  private check (): void {
    if (this.failing) throw new Error('the database is away')
  }
}

/** Graces that fire only when the test says so. */
function manualTimers (): { schedule: Schedule, pending: () => number, fire: () => void } {
  const timers = new Set<{ run: () => void }>()
  return {
    schedule: (run) => {
      const timer = { run }
      timers.add(timer)
      return () => { timers.delete(timer) }
    },
    pending: () => timers.size,
    fire: () => {
      for (const timer of [...timers]) {
        timers.delete(timer)
        timer.run()
      }
    }
  }
}

function instance (store: MemoryStore, instanceId: string, graceSeconds = 5): { tracker: PresenceTracker, said: string[], timers: ReturnType<typeof manualTimers>, warnings: string[], settled: () => Promise<void> } {
  const said: string[] = []
  const warnings: string[] = []
  const timers = manualTimers()
  const heard: Array<() => void> = []
  const tracker = new PresenceTracker({
    store,
    instanceId,
    ttlSeconds: 30,
    graceSeconds,
    schedule: timers.schedule,
    onAnnouncement: ({ topic, user, joined, except }: PresenceAnnouncement) => {
      said.push(`${joined ? 'joined' : 'left'} ${topic} ${user}${except === undefined ? '' : ' except arriving'}`)
      for (const wake of heard.splice(0)) wake()
    },
    log: { warn: (_details, message) => { warnings.push(message) } }
  })
  // What settles after a grace fires: the store's statements, a few turns of the event loop.
  const settled = async (): Promise<void> => { for (let i = 0; i < 10; i++) await new Promise((resolve) => { setImmediate(resolve) }) }
  return { tracker, said, timers, warnings, settled }
}

const alice = { id: 1, name: 'alice' }
const tab = (): Subscriber => ({ send: () => {} }) as unknown as Subscriber

/** A fresh store and one instance `a` on it that has beaten once, with alice in `room` on one connection. */
async function aliceInRoom (graceSeconds?: number): Promise<{ store: MemoryStore, a: ReturnType<typeof instance> }> {
  const store = new MemoryStore()
  const a = instance(store, 'a', graceSeconds)
  await a.tracker.beat()
  await a.tracker.join('room', alice, tab())
  return { store, a }
}

/** As aliceInRoom, with a second instance `b` on the same store, beaten once before alice joins on `a`. */
async function aliceInRoomBesideB (): Promise<{ store: MemoryStore, a: ReturnType<typeof instance>, b: ReturnType<typeof instance> }> {
  const store = new MemoryStore()
  const a = instance(store, 'a')
  const b = instance(store, 'b')
  await a.tracker.beat()
  await b.tracker.beat()
  await a.tracker.join('room', alice, tab())
  return { store, a, b }
}

t.test('the first connection enters and says joined (not to itself); more connections write nothing', async (t) => {
  const { store, a } = await aliceInRoom()
  await a.tracker.join('room', alice, tab())
  t.same(a.said, ['joined room alice except arriving'])
  t.same(store.writes, ['enter a room alice'])
})

t.test('the last connection leaving waits for the grace: back within it, nothing is written or said', async (t) => {
  const { store, a } = await aliceInRoom()
  for (let i = 0; i < 200; i++) {
    a.tracker.leave('room', alice)
    await a.tracker.join('room', alice, tab())
  }
  t.same(store.writes, ['enter a room alice'], 'two hundred unsubscribe-subscribe cycles: no write')
  t.same(a.said, ['joined room alice except arriving'], 'and nothing said')
  t.equal(a.timers.pending(), 0, 'no grace left running')

  a.tracker.leave('room', alice)
  await a.settled()
  t.same(store.present('room'), ['alice'], 'still counted during the grace')
  a.timers.fire()
  await a.settled()
  t.same(store.writes, ['enter a room alice', 'exit a room alice'])
  t.same(a.said, ['joined room alice except arriving', 'left room alice'], 'left once the grace is over')
  t.same(store.present('room'), [])
})

t.test('without a grace, the last connection leaving exits at once', async (t) => {
  const { a } = await aliceInRoom(0)
  a.tracker.leave('room', alice)
  await a.settled()
  t.equal(a.timers.pending(), 0)
  t.same(a.said, ['joined room alice except arriving', 'left room alice'])
})

t.test('a reload that lands on another instance within the grace: no left, no joined', async (t) => {
  const { store, a, b } = await aliceInRoomBesideB()
  a.tracker.leave('room', alice)
  await b.tracker.join('room', alice, tab())
  a.timers.fire()
  await a.settled()
  t.same([...a.said, ...b.said], ['joined room alice except arriving'], 'a held its count during the grace: b\'s join was no joined, a\'s exit no left')
  t.same(store.present('room'), ['alice'])
  b.tracker.leave('room', alice)
  b.timers.fire()
  await b.settled()
  t.same(b.said, ['left room alice'])
})

t.test('back after the grace fired, before its exit began: nothing', async (t) => {
  const { store, a } = await aliceInRoom()
  a.tracker.leave('room', alice)
  a.timers.fire()
  await a.tracker.join('room', alice, tab())
  t.same(store.writes, ['enter a room alice'])
  t.same(a.said, ['joined room alice except arriving'])
})

t.test('back while the exit after the grace is in flight: left, then joined, and counted at the end', async (t) => {
  const { store, a } = await aliceInRoom()
  a.tracker.leave('room', alice)
  let open = (): void => {}
  store.exitGate = new Promise((resolve) => { open = resolve })
  a.timers.fire()
  await a.settled()
  t.same(store.writes, ['enter a room alice'], 'the exit waits in the database')
  const joined = a.tracker.join('room', alice, tab())
  store.exitGate = undefined
  open()
  await joined
  t.same(a.said, ['joined room alice except arriving', 'left room alice', 'joined room alice except arriving'])
  t.same(store.present('room'), ['alice'], 'the database counts the connection that came back')
})

t.test('a database that could not be told: join still resolves, and the next beat tells it', async (t) => {
  const store = new MemoryStore()
  const a = instance(store, 'a')
  await a.tracker.beat()
  store.failing = true
  await a.tracker.join('room', alice, tab())
  t.same(a.said, [])
  t.equal(a.warnings.length, 1)
  store.failing = false
  await a.tracker.beat()
  await a.settled()
  t.same(a.said, ['joined room alice'], 'joined at the next beat')
  t.same(store.present('room'), ['alice'])
})

t.test('taken for dead: the next beat enters again whoever is here, a grace running included', async (t) => {
  const { store, a, b } = await aliceInRoomBesideB()
  await a.tracker.join('lobby', alice, tab())
  a.tracker.leave('lobby', alice)
  // b sweeps a away as if its heartbeat had run out.
  store.instances.delete('a')
  await b.tracker.beat()
  t.same(b.said, ['left room alice', 'left lobby alice'])
  await a.tracker.beat()
  await a.settled()
  t.same(store.present('room'), ['alice'])
  t.same(store.present('lobby'), ['alice'], 'the grace still runs: counted')
  a.timers.fire()
  await a.settled()
  t.same(store.present('lobby'), [])
})

t.test('shutdown with a grace: the graces running stop and the instance expires after the grace; nothing exits at once', async (t) => {
  const { store, a } = await aliceInRoom(2)
  await a.tracker.join('lobby', alice, tab())
  a.tracker.leave('lobby', alice)
  await a.tracker.close()
  a.tracker.leave('room', alice)
  await a.settled()
  t.equal(a.timers.pending(), 0)
  t.same(store.expired, ['a 2'])
  t.same(store.writes, ['enter a room alice', 'enter a lobby alice'], 'no exit: the store keeps them until the instance expires')
  t.same(a.said, ['joined room alice except arriving', 'joined lobby alice except arriving'])
})

t.test('shutdown without a grace: the instance and its users leave at once', async (t) => {
  const { store, a } = await aliceInRoom(0)
  await a.tracker.close()
  t.same(a.said, ['joined room alice except arriving', 'left room alice'])
  t.same(store.present('room'), [])
})

t.test('swept() resolves after the next beat, done or failed', async (t) => {
  const store = new MemoryStore()
  const a = instance(store, 'a')
  const first = a.tracker.swept()
  await a.tracker.beat()
  await first
  store.failing = true
  const second = a.tracker.swept()
  await a.tracker.beat()
  await second
  t.same(a.warnings, ['presence: heartbeat failed'])
})
