import type { PresenceStore } from './presence-store.js'
import type { Subscriber } from './topic-bus.js'
import type { User } from './users.js'

/** A user joined or left a topic for everyone, not just on one instance. */
export interface PresenceAnnouncement {
  topic: string
  user: string
  joined: boolean
  /** The connection whose arrival made the user join: it is not told its own `joined`. */
  except?: Subscriber | undefined
}

/** Runs `run` after `ms`; the function returned cancels it. */
export type Schedule = (run: () => void, ms: number) => () => void

export interface PresenceTrackerOptions {
  store: PresenceStore
  /** This instance's name in the store. */
  instanceId: string
  /** PRESENCE_TTL: a beat every quarter of it. */
  ttlSeconds: number
  /** PRESENCE_GRACE: how long a user's last connection here is still counted after it goes (0: not at all). */
  graceSeconds: number
  /** Tells the subscribers here and the other instances. */
  onAnnouncement: (announcement: PresenceAnnouncement) => void
  log: { warn: (details: object, message: string) => void }
  /** The timer of each grace (tests drive it by hand). */
  schedule?: Schedule
}

/** Per user and topic on this instance: its connections there, and whether the database counts it. */
interface LocalPresence {
  topic: string
  user: User
  connections: number
  /** Set while the grace of the last connection's leaving runs: the database still counts the user. */
  cancelGrace: (() => void) | undefined
  entered: boolean
  /** The database work for this entry, one step after the other. */
  settled: Promise<void>
  /** The connection whose arrival made it enter. */
  arriving: Subscriber | undefined
}

const realTimers: Schedule = (run, ms) => {
  const timer = setTimeout(run, ms)
  timer.unref()
  return () => { clearTimeout(timer) }
}

/**
 * Who is in each topic, across instances, as one instance sees it: counts its own
 * connections per user and topic, and tells the store (src/presence-store.ts) only when a
 * user's first one arrives, or when the last one has gone and PRESENCE_GRACE has passed
 * without another arriving. The store says whether that was the user's first or last
 * anywhere: then a joined or left announcement. So a reload, a reconnect or an
 * unsubscribe-subscribe loop costs nothing within the grace (a reload landing on another
 * instance finds the user still counted here), and presence writes come at most once per
 * grace per user and topic.
 *
 * It beats a heartbeat every quarter of PRESENCE_TTL that vouches for this instance for
 * three quarters of it, and at every beat sweeps the store of instances whose heartbeat ran
 * out and of presence whose instance is gone (left for their users).
 */
export class PresenceTracker {
  private readonly local = new Map<string, LocalPresence>()
  private readonly options: PresenceTrackerOptions
  private readonly schedule: Schedule
  private readonly graceMs: number
  private closing = false
  private beatTimer: NodeJS.Timeout | undefined
  private sweepWaiters: Array<() => void> = []

  constructor (options: PresenceTrackerOptions) {
    this.options = options
    this.schedule = options.schedule ?? realTimers
    this.graceMs = options.graceSeconds * 1000
  }

  /** Beats at once (the instance's row comes before any of its presence), then every quarter of PRESENCE_TTL. */
  async start (): Promise<void> {
    await this.beat()
    this.beatTimer = setInterval(() => { void this.beat() }, (this.options.ttlSeconds * 1000) / 4).unref()
  }

  /**
   * A connection of `user` is in `topic` now: `joined` for the others if it is the user's
   * first anywhere and the user was not here within the grace. Resolves once the database
   * counts the user here (or could not be told: retried at the next beat).
   */
  async join (topic: string, user: User, connection: Subscriber): Promise<void> {
    const key = keyOf(topic, user)
    let entry = this.local.get(key)
    if (entry === undefined) {
      entry = { topic, user, connections: 0, cancelGrace: undefined, entered: false, settled: Promise.resolve(), arriving: undefined }
      this.local.set(key, entry)
    }
    entry.connections += 1
    if (entry.cancelGrace !== undefined) {
      // Back within the grace: still counted, nothing to tell anyone.
      entry.cancelGrace()
      entry.cancelGrace = undefined
    }
    if (entry.connections === 1) {
      // A no-op when the database counts the user here already; not when a leaving is on its way there.
      entry.arriving = connection
      this.resettle(key, entry)
    }
    await entry.settled
  }

  /** A connection of `user` left `topic`: after the grace, `left` for the others if it was the user's last anywhere. */
  leave (topic: string, user: User): void {
    const key = keyOf(topic, user)
    const entry = this.local.get(key)
    if (entry === undefined || entry.connections === 0) return
    entry.connections -= 1
    if (entry.connections > 0) return
    if (this.graceMs === 0 || this.closing) {
      this.resettle(key, entry)
      return
    }
    entry.cancelGrace = this.schedule(() => {
      entry.cancelGrace = undefined
      this.resettle(key, entry)
    }, this.graceMs)
  }

  /** One heartbeat and sweep; what the database could not be told before is told again. */
  async beat (): Promise<void> {
    try {
      if (await this.options.store.heartbeat(this.options.instanceId, { aliveForSeconds: (this.options.ttlSeconds * 3) / 4 })) {
        // Taken for dead meanwhile: this instance's presence was removed, enter it again.
        for (const entry of this.local.values()) entry.entered = false
      }
      for (const { topic, user } of await this.options.store.sweep({ ttlSeconds: this.options.ttlSeconds })) this.options.onAnnouncement({ topic, user, joined: false })
    } catch (error) {
      this.options.log.warn({ err: error }, 'presence: heartbeat failed')
      return
    } finally {
      for (const wake of this.sweepWaiters.splice(0)) wake()
    }
    for (const [key, entry] of this.local) if (this.wants(entry) !== entry.entered) this.resettle(key, entry)
  }

  /** Resolves when this instance's next beat and sweep is over (done or failed). */
  async swept (): Promise<void> {
    await new Promise<void>((resolve) => { this.sweepWaiters.push(resolve) })
  }

  /**
   * Shutting down. With a grace, this instance's presence stays counted for PRESENCE_GRACE
   * more (the graces running included, which restart): its users reconnecting to another
   * instance meanwhile show nothing to the others, and the first sweep after that says left
   * for the others. Without one, its users leave now.
   */
  async close (): Promise<void> {
    clearInterval(this.beatTimer)
    this.closing = true
    for (const entry of this.local.values()) {
      entry.cancelGrace?.()
      entry.cancelGrace = undefined
    }
    await Promise.all([...this.local.values()].map(async (entry) => { await entry.settled }))
    try {
      if (this.graceMs > 0) await this.options.store.expireIn(this.options.instanceId, this.options.graceSeconds)
      else for (const { topic, user } of await this.options.store.sweep({ instanceId: this.options.instanceId })) this.options.onAnnouncement({ topic, user, joined: false })
    } catch (error) {
      this.options.log.warn({ err: error }, 'presence: could not say goodbye; the others will see this instance stop within PRESENCE_TTL')
    }
  }

  /** Whether the database should count the user here: a connection is, or the grace of the last one runs. */
  private wants (entry: LocalPresence): boolean {
    return entry.connections > 0 || entry.cancelGrace !== undefined
  }

  private resettle (key: string, entry: LocalPresence): void {
    entry.settled = entry.settled.then(async () => { await this.settle(key, entry) })
  }

  /** Brings the database in line with this entry; a failure is retried at the next beat. */
  private async settle (key: string, entry: LocalPresence): Promise<void> {
    // Closing: what the database counts stays for the shutdown to settle at once (close).
    if (this.closing) return
    const { store, instanceId, onAnnouncement } = this.options
    const wanted = this.wants(entry)
    // Taken by the step that enters (or finds the user entered), not by an exit in flight
    // before the connection came back.
    const arriving = wanted ? entry.arriving : undefined
    if (wanted) entry.arriving = undefined
    try {
      if (wanted && !entry.entered) {
        const first = await store.enter(instanceId, entry.topic, entry.user.id, entry.user.name)
        entry.entered = true
        if (first) onAnnouncement({ topic: entry.topic, user: entry.user.name, joined: true, except: arriving })
      } else if (!wanted && entry.entered) {
        const last = await store.exit(instanceId, entry.topic, entry.user.id)
        entry.entered = false
        if (last) onAnnouncement({ topic: entry.topic, user: entry.user.name, joined: false })
      }
    } catch (error) {
      this.options.log.warn({ err: error, topic: entry.topic }, 'presence: the database could not be told; retrying at the next heartbeat')
      return
    }
    if (!this.wants(entry) && !entry.entered && this.local.get(key) === entry) this.local.delete(key)
  }
}

function keyOf (topic: string, user: User): string {
  return `${topic}\n${user.id}`
}
