import { createHash } from 'node:crypto'
import { and, eq, getTableName, sql } from 'drizzle-orm'
import { directMessagePrefix, type MembersChange, type Role } from './access.js'
import { encodeEvent } from './bus-format.js'
import type { Database, Queryable } from './db/database.js'
import { topicMembers, topics, users } from './db/schema.js'
import type { NotifyOptions } from './message-store.js'
import type { User } from './users.js'

/**
 * The members of private topics in Postgres: creating a topic on purpose, starting a
 * direct-message topic, the member list, adding, changing and removing a member. Who may do
 * it is asked of src/access.ts first; each change is then checked again, from the table,
 * under the topic row's lock, and sends its NOTIFY (src/bus-format.ts) in the same
 * transaction, so every instance hears it at its commit, in commit order with the topic's
 * messages. The raw SQL names its tables and columns from src/db/schema.ts.
 */

const T = getTableName(topics)
const M = getTableName(topicMembers)
const U = getTableName(users)
const t = { name: topics.name.name, visibility: topics.visibility.name, kind: topics.kind.name, createdBy: topics.createdBy.name }
const m = { topic: topicMembers.topic.name, userId: topicMembers.userId.name, role: topicMembers.role.name }
const u = { id: users.id.name, name: users.name.name }

/** The longest name the topic rule (topicPattern, src/protocol.ts) allows. */
const maxTopicChars = 64
/** Hex digits of the hash that names a direct-message topic whose ids do not fit in a name. */
const hashedNameDigits = 48

export interface MemberEntry { name: string, role: Role }

/** How a change ended: the change made (undefined when there was none to make), or why not. */
export type MembersChangeOutcome =
  | { ok: true, change: MembersChange | undefined }
  | { ok: false, code: 'not_private' | 'forbidden' | 'unknown_user' | 'not_found' | 'last_owner' }

/**
 * The name of the direct-message topic of exactly these users, whoever asks: `dm.` and their
 * ids, sorted, joined by `-` (`dm.3-17`), or, when that is longer than a topic name may be,
 * `dm.` and a hash of it. A hash never holds `-` and a list of two ids or more always does,
 * so the two kinds of names never meet.
 */
export function directMessageName (userIds: readonly number[]): string {
  const ids = [...new Set(userIds)].sort((a, b) => a - b).join('-')
  const name = directMessagePrefix + ids
  if (name.length <= maxTopicChars) return name
  return directMessagePrefix + createHash('sha256').update(ids).digest('hex').slice(0, hashedNameDigits)
}

/** Whether a topic of that name exists (of either visibility). */
export async function topicExists (db: Queryable, topic: string): Promise<boolean> {
  return (await db.query(`SELECT 1 FROM ${T} WHERE ${t.name} = $1`, [topic])).length > 0
}

/**
 * Creates a topic on purpose, its creator the owner of a private one, in one statement. False
 * when the name is a topic already (made meanwhile, of either kind).
 */
export async function createTopic (db: Queryable, topic: { name: string, visibility: 'public' | 'private', userId: number }): Promise<boolean> {
  const rows = await db.query<{ created: number }>(`
    WITH created AS (
      INSERT INTO ${T} (${t.name}, ${t.visibility}, ${t.createdBy}) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING ${t.name} AS name, ${t.visibility} AS visibility
    ), owner AS (
      INSERT INTO ${M} (${m.topic}, ${m.userId}, ${m.role}) SELECT name, $3, 'owner' FROM created WHERE visibility = 'private' RETURNING 1
    )
    SELECT (SELECT count(*) FROM created)::int AS created, (SELECT count(*) FROM owner)::int AS owners`,
  [topic.name, topic.visibility, topic.userId])
  return rows[0]?.created === 1
}

/** A topic's members with their roles, sorted by name (by code point). */
export async function listMembers (db: Queryable, topic: string): Promise<MemberEntry[]> {
  return await db.query<MemberEntry>(`
    SELECT u.${u.name} AS name, m.${m.role} AS role FROM ${M} m JOIN ${U} u ON u.${u.id} = m.${m.userId}
    WHERE m.${m.topic} = $1 ORDER BY u.${u.name} COLLATE "C"`, [topic])
}

/** The users of these names, matched without regard to case; a name nobody has is left out. */
export async function findUsers (db: Queryable, names: readonly string[]): Promise<User[]> {
  return await db.query<User>(`SELECT ${u.id} AS id, ${u.name} AS name FROM ${U} WHERE lower(${u.name}) = ANY($1::text[])`,
    [names.map((name) => name.toLowerCase())])
}

/**
 * Makes the direct-message topic of these members, all of role `member`, unless it exists: in
 * one statement, which also tells the other instances of each `added` change when it made the
 * topic. `exists` when it was there already (its members are fixed, so they are these);
 * `not_dm` when the name is a topic of another kind (a public topic of that name from before
 * names beginning with `dm.` were reserved).
 */
export async function startDirectMessage (db: Queryable, start: {
  topic: string
  callerId: number
  memberIds: readonly number[]
  /** The changes to tell the other instances of, when the topic is made. */
  added: readonly MembersChange[]
  notify: NotifyOptions | undefined
}): Promise<'created' | 'exists' | 'not_dm'> {
  const { notify } = start
  const payloads = notify === undefined ? [] : start.added.map((change) => encodeEvent(notify.instanceId, { kind: 'members', ...change }))
  const rows = await db.query<{ created: number }>(`
    WITH created AS (
      INSERT INTO ${T} (${t.name}, ${t.visibility}, ${t.kind}, ${t.createdBy}) VALUES ($1, 'private', 'dm', $2)
      ON CONFLICT DO NOTHING RETURNING ${t.name} AS name
    ), members AS (
      INSERT INTO ${M} (${m.topic}, ${m.userId}, ${m.role})
      SELECT c.name, ids.id, 'member' FROM created c CROSS JOIN unnest($3::int[]) AS ids(id) RETURNING 1
    ), notified AS (
      SELECT pg_notify($4::text, p.payload) FROM created CROSS JOIN unnest($5::text[]) AS p(payload)
    )
    SELECT (SELECT count(*) FROM created)::int AS created, (SELECT count(*) FROM members)::int AS members,
      (SELECT count(*) FROM notified)::int AS notified`,
  [start.topic, start.callerId, [...start.memberIds], notify?.channel ?? '', payloads])
  if (rows[0]?.created === 1) return 'created'
  // Made meanwhile by another request (this statement waited for its commit), or long ago: read with a new snapshot.
  const [existing] = await db.query<{ kind: string | null }>(`SELECT ${t.kind} AS kind FROM ${T} WHERE ${t.name} = $1`, [start.topic])
  return existing?.kind === 'dm' ? 'exists' : 'not_dm'
}

type Transaction = Parameters<Parameters<Database['orm']['transaction']>[0]>[0]

/** What a change needs to know of a topic, read under its row's lock. */
interface LockedTopic {
  /** undefined: not a private topic (public, or no topic). */
  kind: 'dm' | 'private' | undefined
  target: User | undefined
  members: number
  owners: number
  callerRole: Role | undefined
  targetRole: Role | undefined
}

/**
 * Locks the topic's row, so that every change of its members waits for the one before it to
 * commit, then reads, with a snapshot taken after the lock, what the change depends on.
 */
async function lockTopic (tx: Transaction, topic: string, callerId: number, targetName: string): Promise<LockedTopic> {
  const [found] = await tx.select({ visibility: topics.visibility, kind: topics.kind }).from(topics)
    .where(eq(topics.name, topic)).for('no key update')
  const [target] = await tx.select({ id: users.id, name: users.name }).from(users)
    .where(eq(sql`lower(${users.name})`, targetName.toLowerCase()))
  const [counts] = await tx.select({
    members: sql<number>`count(*)::int`,
    owners: sql<number>`(count(*) filter (where ${topicMembers.role} = 'owner'))::int`,
    callerRole: sql<Role | null>`max(${topicMembers.role}) filter (where ${topicMembers.userId} = ${callerId})`,
    targetRole: sql<Role | null>`max(${topicMembers.role}) filter (where ${topicMembers.userId} = ${target?.id ?? null}::int)`
  }).from(topicMembers).where(eq(topicMembers.topic, topic))
  return {
    kind: found?.visibility !== 'private' ? undefined : found.kind === 'dm' ? 'dm' : 'private',
    target,
    members: counts?.members ?? 0,
    owners: counts?.owners ?? 0,
    callerRole: counts?.callerRole ?? undefined,
    targetRole: counts?.targetRole ?? undefined
  }
}

async function tellOthers (tx: Transaction, notify: NotifyOptions | undefined, change: MembersChange): Promise<void> {
  if (notify === undefined) return
  await tx.execute(sql`SELECT pg_notify(${notify.channel}, ${encodeEvent(notify.instanceId, { kind: 'members', ...change })})`)
}

const refused = (code: Extract<MembersChangeOutcome, { ok: false }>['code']): MembersChangeOutcome => ({ ok: false, code })

/**
 * An owner adds a user to a private topic or changes a member's role, in one transaction.
 * The only owner cannot make themself a member (`last_owner`): a topic keeps an owner while
 * it has members.
 */
export async function setMember (db: Pick<Database, 'orm'>, change: {
  topic: string
  caller: User
  name: string
  role: Role
  notify: NotifyOptions | undefined
}): Promise<MembersChangeOutcome> {
  const { topic, caller, role } = change
  return await db.orm.transaction(async (tx) => {
    const locked = await lockTopic(tx, topic, caller.id, change.name)
    if (locked.kind === undefined) return refused('not_private')
    if (locked.kind === 'dm' || locked.callerRole !== 'owner') return refused('forbidden')
    const { target } = locked
    if (target === undefined) return refused('unknown_user')
    if (locked.targetRole === role) return { ok: true, change: undefined }
    if (locked.targetRole === 'owner' && locked.owners === 1) return refused('last_owner')
    await tx.insert(topicMembers).values({ topic, userId: target.id, role })
      .onConflictDoUpdate({ target: [topicMembers.topic, topicMembers.userId], set: { role } })
    const made: MembersChange = { topic, userId: target.id, user: target.name, role, by: caller.name, previous: locked.targetRole ?? null }
    await tellOthers(tx, change.notify, made)
    return { ok: true, change: made }
  })
}

/**
 * An owner removes a member, or a member leaves, in one transaction. The only owner cannot
 * leave while other members stay (`last_owner`); a lone owner may. Nobody changes the
 * members of a direct-message topic.
 */
export async function removeMember (db: Pick<Database, 'orm'>, change: {
  topic: string
  caller: User
  name: string
  notify: NotifyOptions | undefined
}): Promise<MembersChangeOutcome> {
  const { topic, caller } = change
  return await db.orm.transaction(async (tx) => {
    const locked = await lockTopic(tx, topic, caller.id, change.name)
    if (locked.kind === undefined) return refused('not_private')
    if (locked.kind === 'dm' || locked.callerRole === undefined) return refused('forbidden')
    const { target } = locked
    const leaving = target?.id === caller.id
    if (!leaving && locked.callerRole !== 'owner') return refused('forbidden')
    if (target === undefined) return refused('unknown_user')
    if (locked.targetRole === undefined) return refused('not_found')
    if (locked.targetRole === 'owner' && locked.owners === 1 && locked.members > 1) return refused('last_owner')
    await tx.delete(topicMembers).where(and(eq(topicMembers.topic, topic), eq(topicMembers.userId, target.id)))
    const made: MembersChange = { topic, userId: target.id, user: target.name, role: null, by: caller.name, previous: locked.targetRole }
    await tellOthers(tx, change.notify, made)
    return { ok: true, change: made }
  })
}
