import { getTableName } from 'drizzle-orm'
import type { Queryable } from './db/database.js'
import { topicMembers, topics } from './db/schema.js'

/**
 * Who may do what in a topic: the one place that decides (docs/protocol.md, "Private topics").
 * Every route and frame that reads or writes a topic asks `decide`; nothing else looks at
 * visibility or membership to allow or refuse.
 *
 * A public topic (or one that does not exist yet, which a first use makes public) is open to
 * every logged-in user. A private topic, direct messages included, is open to its members.
 * What an instance knows is cached: a topic's visibility never changes, so a public topic is
 * remembered for good (up to a bound); a private topic's members are kept and changed in
 * place by every membership change (`apply`), which every instance hears on the bus in commit
 * order, and dropped after a LISTEN outage (`forgetMembers`), when changes may have been
 * missed. Both caches are bounded, except for the topics with subscribers here (`pin`): what
 * the topic bus asks before each delivery (`knownVisibility`, `mayReceive`) is never forgotten
 * while it delivers, only after an outage, and then it reads again before it delivers.
 */

export type Role = 'owner' | 'member'

/**
 * What a user wants to do in a topic:
 * - `read`: subscribe, catch up with `since`, history pages, presence, the member list, a
 *   read position, see it in the directory;
 * - `publish`: publish (WebSocket and HTTP) and every change to a message;
 * - `manage`: add members, change roles, remove others (an owner of a private topic that is
 *   not a direct-message topic).
 */
export type TopicAction = 'read' | 'publish' | 'manage'

/** What the decision knows of the topic, for the caller's answer. */
export interface TopicAccess {
  /** Whether the topic has a row (it has messages, subscribers or was created). */
  exists: boolean
  visibility: 'public' | 'private'
  /** `dm` for a direct-message topic. */
  kind: 'dm' | undefined
  /** The user's role in a private topic; undefined for a public topic. */
  role: Role | undefined
}

export type AccessDecision =
  | { allowed: true, topic: TopicAccess }
  /** `bad_topic`: a `dm.` name that is not a direct-message topic. */
  | { allowed: false, code: 'forbidden' | 'bad_topic', topic: TopicAccess | undefined }

/** A change to a private topic's members, heard by every instance (src/bus-format.ts). */
export interface MembersChange {
  topic: string
  userId: number
  /** The user's name, for the frames it causes (`added`). */
  user: string
  /** The new role; null when the user is no longer a member (removed, left). */
  role: Role | null
  /** Who made the change (the `by` of `added`). */
  by: string
  /**
   * The user's role before the change, when the one who made it knows (null: not a member):
   * a change of role is no `added`. Without it, the members known here say.
   */
  previous?: Role | null
}

/**
 * Hears a membership change after the kept members changed: `before` is the user's role
 * before it (null: not a member), or undefined when this instance cannot tell.
 */
export type MembersChangeHandler = (change: MembersChange, before: Role | null | undefined) => void

/** Names that begin with this are direct-message topics, made only by POST /api/dm. */
export const directMessagePrefix = 'dm.'

const T = getTableName(topics)
const M = getTableName(topicMembers)

/** Topics remembered as public, at most: past it, the oldest is forgotten (and read again when next asked). */
const defaultMaxPublicTopics = 50_000
/** Private topics whose members are kept, at most. */
const defaultMaxPrivateTopics = 10_000
/**
 * A read that a change of the same topic overtook is read again, this many times at most;
 * then it answers without keeping what it read.
 */
const maxReadAttempts = 5

interface PrivateTopic {
  kind: 'dm' | undefined
  roles: Map<number, Role>
}

interface TopicRow {
  visibility: 'public' | 'private'
  kind: string | null
  members: Array<[number, Role]> | null
}

export interface AccessOptions {
  db: Queryable
  maxPublicTopics?: number
  maxPrivateTopics?: number
}

export class Access {
  private readonly db: Queryable
  private readonly maxPublicTopics: number
  private readonly maxPrivateTopics: number
  /** In insertion order: the first is the oldest remembered. */
  private readonly publicTopics = new Set<string>()
  private readonly privateTopics = new Map<string, PrivateTopic>()
  /**
   * Bumped by every forgetting and every topic created here: a read of members that began
   * before one is not cached (it may be older than what was forgotten).
   */
  private generation = 0
  /** Per topic being read: changes heard meanwhile, so that a read a change overtook is read again. */
  private readonly readsInFlight = new Map<string, { reads: number, changes: number }>()
  /** Topics with subscribers here: never forgotten to keep the caches within their bounds. */
  private readonly pinned = new Set<string>()
  private readonly changeHandlers: MembersChangeHandler[] = []

  constructor (options: AccessOptions) {
    this.db = options.db
    this.maxPublicTopics = options.maxPublicTopics ?? defaultMaxPublicTopics
    this.maxPrivateTopics = options.maxPrivateTopics ?? defaultMaxPrivateTopics
  }

  /**
   * Whether `userId` may do `action` in `topic`. Costs nothing for a topic known here; else
   * one read. Throws when the database cannot say (the caller answers `unavailable`).
   */
  async decide (userId: number, topic: string, action: TopicAction): Promise<AccessDecision> {
    const known = this.known(topic)
    const found = known ?? await this.read(topic)
    if (found === undefined) {
      // Not a topic yet: a first use makes it public, except a direct-message name.
      const access: TopicAccess = { exists: false, visibility: 'public', kind: undefined, role: undefined }
      if (topic.startsWith(directMessagePrefix)) return { allowed: false, code: 'bad_topic', topic: access }
      return action === 'manage' ? { allowed: false, code: 'forbidden', topic: access } : { allowed: true, topic: access }
    }
    if (found === 'public') {
      const access: TopicAccess = { exists: true, visibility: 'public', kind: undefined, role: undefined }
      return action === 'manage' ? { allowed: false, code: 'forbidden', topic: access } : { allowed: true, topic: access }
    }
    const role = found.roles.get(userId)
    const access: TopicAccess = { exists: true, visibility: 'private', kind: found.kind, role }
    if (role === undefined) return { allowed: false, code: 'forbidden', topic: access }
    if (action === 'manage' && (role !== 'owner' || found.kind === 'dm')) return { allowed: false, code: 'forbidden', topic: access }
    return { allowed: true, topic: access }
  }

  /**
   * Whether the user may read the topic, from what this instance knows, without waiting:
   * for the delivery of each message of a private topic. Only right for a topic whose
   * visibility is known here (`knownVisibility`): the topic bus asks that first, and reads a
   * topic it does not know (`refresh`) before it delivers anything of it.
   */
  mayReceive (userId: number, topic: string): boolean {
    if (this.publicTopics.has(topic)) return true
    const found = this.privateTopics.get(topic)
    return found === undefined ? !this.isPrivateName(topic) : found.roles.has(userId)
  }

  /** Whether the topic is known here to be private. */
  isPrivate (topic: string): boolean {
    return this.privateTopics.has(topic)
  }

  /**
   * What this instance knows of the topic without reading: public, private with its members
   * known, or undefined (never read, forgotten, or its members forgotten after an outage).
   */
  knownVisibility (topic: string): 'public' | 'private' | undefined {
    if (this.publicTopics.has(topic)) return 'public'
    return this.privateTopics.has(topic) ? 'private' : undefined
  }

  /**
   * The topic has subscribers here (the topic bus says so): what is known of it is kept past
   * the caches' bounds until `unpin`. forgetMembers still forgets a pinned private topic's members.
   */
  pin (topic: string): void {
    this.pinned.add(topic)
  }

  /** The topic's last subscriber here is gone. */
  unpin (topic: string): void {
    this.pinned.delete(topic)
  }

  /**
   * A membership change, made here or heard from another instance: the kept members change
   * in place, then every handler hears it (the chat closes a removed member's subscriptions
   * and tells an added one).
   */
  apply (change: MembersChange): void {
    const reading = this.readsInFlight.get(change.topic)
    if (reading !== undefined) reading.changes++
    const found = this.privateTopics.get(change.topic)
    let before = change.previous
    if (found !== undefined) {
      // null says "not a member" (a direct message's members are known here before their change is applied).
      if (before === undefined) before = found.roles.get(change.userId) ?? null
      if (change.role === null) found.roles.delete(change.userId)
      else found.roles.set(change.userId, change.role)
    }
    for (const handler of this.changeHandlers) handler(change, before)
  }

  /** Membership changes, as `apply` hears them. */
  onChange (handler: MembersChangeHandler): void {
    this.changeHandlers.push(handler)
  }

  /**
   * A topic was made private here (POST /api/topics, POST /api/dm): remembered with its
   * members, so its first subscribe costs no read.
   */
  created (topic: string, kind: 'dm' | undefined, members: ReadonlyArray<[number, Role]>): void {
    this.generation++
    this.publicTopics.delete(topic)
    this.keepPrivate(topic, { kind, roles: new Map(members) })
  }

  /**
   * After a LISTEN outage, changes may have been missed: forget every private topic's
   * members. Returns the private topics that were known, for the caller to read again
   * (`refresh`) before it delivers anything of them.
   */
  forgetMembers (): string[] {
    this.generation++
    const forgotten = [...this.privateTopics.keys()]
    this.privateTopics.clear()
    return forgotten
  }

  /**
   * Reads a topic again: the members a private topic has now (kept here, unless changes to
   * them kept overtaking the read), or undefined when it is not private. Throws when the
   * database cannot say.
   */
  async refresh (topic: string): Promise<ReadonlyMap<number, Role> | undefined> {
    const found = await this.read(topic)
    return found === undefined || found === 'public' ? undefined : found.roles
  }

  private known (topic: string): 'public' | PrivateTopic | undefined {
    if (this.publicTopics.has(topic)) return 'public'
    return this.privateTopics.get(topic)
  }

  /** Only direct-message names are private before they are read; any other unknown name may be public. */
  private isPrivateName (topic: string): boolean {
    return topic.startsWith(directMessagePrefix)
  }

  private async read (topic: string): Promise<'public' | PrivateTopic | undefined> {
    for (let attempt = 1; ; attempt++) {
      const generation = this.generation
      let reading = this.readsInFlight.get(topic)
      if (reading === undefined) this.readsInFlight.set(topic, reading = { reads: 0, changes: 0 })
      reading.reads++
      const changes = reading.changes
      let rows: TopicRow[]
      try {
        rows = await this.db.query<TopicRow>(
          `SELECT t.visibility, t.kind,
             CASE WHEN t.visibility = 'private' THEN
               (SELECT coalesce(json_agg(json_build_array(m.user_id, m.role)), '[]'::json) FROM ${M} m WHERE m.topic = t.name)
             END AS members
           FROM ${T} t WHERE t.name = $1`, [topic], 'canopy_topic_access')
      } finally {
        if (--reading.reads === 0) this.readsInFlight.delete(topic)
      }
      const row = rows[0]
      if (row === undefined) return undefined
      if (row.visibility === 'public') {
        this.rememberPublic(topic)
        return 'public'
      }
      const found: PrivateTopic = { kind: row.kind === 'dm' ? 'dm' : undefined, roles: new Map(row.members ?? []) }
      // A change of this topic heard while reading (or a forgetting) may be newer than what
      // was read: read again, and past maxReadAttempts use what was read, keeping nothing.
      if (generation === this.generation && reading.changes === changes) {
        this.keepPrivate(topic, found)
        return found
      }
      if (attempt >= maxReadAttempts) return found
    }
  }

  private rememberPublic (topic: string): void {
    if (this.publicTopics.has(topic)) return
    if (this.publicTopics.size >= this.maxPublicTopics) forgetOldest(this.publicTopics, this.pinned)
    this.publicTopics.add(topic)
  }

  private keepPrivate (topic: string, found: PrivateTopic): void {
    this.privateTopics.delete(topic)
    if (this.privateTopics.size >= this.maxPrivateTopics) forgetOldest(this.privateTopics, this.pinned)
    this.privateTopics.set(topic, found)
  }
}

/**
 * Forgets the oldest topic of a cache kept in insertion order that is not pinned; the pinned
 * ones met on the way go to the back (so the next search does not meet them again). When
 * every one is pinned, none is forgotten: the cache passes its bound by its pinned topics.
 */
function forgetOldest (cache: Set<string> | Map<string, unknown>, pinned: ReadonlySet<string>): void {
  let left = cache.size
  for (const topic of cache.keys()) {
    if (left-- === 0) return
    if (!pinned.has(topic)) {
      cache.delete(topic)
      return
    }
    if (cache instanceof Set) {
      cache.delete(topic)
      cache.add(topic)
    } else {
      const value = cache.get(topic)
      cache.delete(topic)
      cache.set(topic, value)
    }
  }
}
