import { getTableName } from 'drizzle-orm'
import type { Queryable } from './db/database.js'
import { instances, presence, topicPresence } from './db/schema.js'

/**
 * Presence in Postgres, shared by every instance: a row per instance where a user is in a
 * topic, a count of those rows per user and topic (whose lock decides who says joined and
 * left; the row goes when the count reaches zero), and each instance's heartbeat. Writes
 * happen when a user's first connection on an instance enters a topic or, after
 * PRESENCE_GRACE, its last one leaves, and once per heartbeat: never per message or ping.
 * The SQL names its tables and columns from src/db/schema.ts.
 *
 * An instance's `alive_until` is the time until which its last beat vouches for it: the
 * beat's time plus a span the beating instance derives from its own PRESENCE_TTL. Each
 * instance is judged by its own TTL, so instances started with different ones do not take
 * each other for dead. `heartbeat_at` keeps the beat's time, which is what an instance of an
 * earlier version writes and reads: during a rolling upgrade each judges the other's rows
 * by the sweeping instance's TTL, as before.
 */

const I = getTableName(instances)
const P = getTableName(presence)
const M = getTableName(topicPresence)
const i = { id: instances.id.name, heartbeatAt: instances.heartbeatAt.name, aliveUntil: instances.aliveUntil.name }
const p = { topic: presence.topic.name, userId: presence.userId.name, instanceId: presence.instanceId.name }
const m = { topic: topicPresence.topic.name, userId: topicPresence.userId.name, userName: topicPresence.userName.name, instances: topicPresence.instances.name }

/** PRESENCE_TTL's default: how an instance of an earlier version is judged when no TTL is given. */
const defaultTtlSeconds = 30

/** A user left a topic for everyone (not just on one instance). */
export interface PresenceChange { topic: string, user: string }

/** This instance has the user in the topic now; true when no instance had before (joined). */
export async function enter (db: Queryable, instanceId: string, topic: string, userId: number, userName: string): Promise<boolean> {
  const rows = await db.query<{ instances: number }>(`
    WITH mine AS (
      INSERT INTO ${P} (${p.topic}, ${p.userId}, ${p.instanceId}) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1
    )
    INSERT INTO ${M} AS m (${m.topic}, ${m.userId}, ${m.userName}, ${m.instances})
    SELECT $1, $2, $4, 1 FROM mine
    ON CONFLICT (${m.topic}, ${m.userId}) DO UPDATE SET ${m.instances} = m.${m.instances} + 1, ${m.userName} = excluded.${m.userName}
    RETURNING ${m.instances} AS instances`, [topic, userId, instanceId, userName], 'canopy_presence_enter')
  return rows[0]?.instances === 1
}

/**
 * This instance no longer has the user in the topic; true when no instance has now (left),
 * and then the count's row is gone too.
 */
export async function exit (db: Queryable, instanceId: string, topic: string, userId: number): Promise<boolean> {
  const rows = await db.query<{ instances: number }>(`
    WITH mine AS (
      DELETE FROM ${P} WHERE ${p.topic} = $1 AND ${p.userId} = $2 AND ${p.instanceId} = $3 RETURNING 1
    )
    UPDATE ${M} m SET ${m.instances} = m.${m.instances} - 1 FROM mine
    WHERE m.${m.topic} = $1 AND m.${m.userId} = $2
    RETURNING m.${m.instances} AS instances`, [topic, userId, instanceId], 'canopy_presence_exit')
  const last = rows[0]?.instances === 0
  if (last) await forgetZeros(db, [topic], [userId])
  return last
}

/**
 * Deletes these counts if they are still zero. A statement of its own: one statement cannot
 * both decrement a row and delete it. Under the row's lock the zero is checked again, so an
 * instance that entered meanwhile keeps its count; one that enters after makes a new row (and
 * says joined, rightly). A count left at zero by a crash between the two statements is
 * harmless: nobody reads it as present, and the next enter counts from it.
 */
async function forgetZeros (db: Queryable, topics: string[], userIds: number[]): Promise<void> {
  await db.query(`
    DELETE FROM ${M} m USING unnest($1::text[], $2::int[]) AS z(topic, user_id)
    WHERE m.${m.topic} = z.topic AND m.${m.userId} = z.user_id AND m.${m.instances} <= 0`,
  [topics, userIds], 'canopy_presence_forget_zeros')
}

/** The users in a topic now, on any instance. */
export async function presentIn (db: Queryable, topic: string): Promise<string[]> {
  const rows = await db.query<{ name: string }>(
    `SELECT ${m.userName} AS name FROM ${M} WHERE ${m.topic} = $1 AND ${m.instances} > 0`, [topic], 'canopy_presence_of_topic')
  return rows.map((row) => row.name)
}

/**
 * This instance is alive for `aliveForSeconds` more. True when its row had to be made anew:
 * the first beat, or after another instance took it for dead (its presence is gone and must
 * be entered again).
 */
export async function heartbeat (db: Queryable, instanceId: string, options: { aliveForSeconds: number }): Promise<boolean> {
  const rows = await db.query<{ made: boolean }>(`
    INSERT INTO ${I} (${i.id}, ${i.heartbeatAt}, ${i.aliveUntil}) VALUES ($1, now(), now() + make_interval(secs => $2))
    ON CONFLICT (${i.id}) DO UPDATE SET ${i.heartbeatAt} = excluded.${i.heartbeatAt}, ${i.aliveUntil} = excluded.${i.aliveUntil}
    RETURNING xmax = 0 AS made`, [instanceId, options.aliveForSeconds], 'canopy_presence_heartbeat')
  return rows[0]?.made === true
}

/**
 * An instance shutting down: its presence stays for `seconds` more, so that its users who
 * come back on another instance meanwhile show nothing to the others; the next sweep after
 * that removes the rest (and says left for them).
 */
export async function expireIn (db: Queryable, instanceId: string, seconds: number): Promise<void> {
  await db.query(`
    UPDATE ${I} SET ${i.aliveUntil} = LEAST(${i.aliveUntil}, now() + make_interval(secs => $2)) WHERE ${i.id} = $1`,
  [instanceId, seconds])
}

/**
 * Removes the instances whose heartbeat has run out (or the one given: this instance,
 * leaving at once), and presence rows of instances that are gone: theirs, and any row whose
 * instance row is missing (an instance taken for dead enters a user before its next beat
 * makes its row again, then dies). Returns who left for everyone with them.
 *
 * A live instance's row is written before any of its presence rows (it beats first), and
 * again before it enters anything after being taken for dead, so a row seen here without its
 * instance is a ghost.
 */
export async function sweep (db: Queryable, options: { instanceId?: string, ttlSeconds?: number } = {}): Promise<PresenceChange[]> {
  // A row of an earlier version has no alive_until: its beat is judged by this instance's TTL.
  const which = options.instanceId === undefined
    ? `coalesce(${i.aliveUntil}, ${i.heartbeatAt} + make_interval(secs => $1)) < now()`
    : `${i.id} = $1`
  const rows = await db.query<{ topic: string, user_id: number, user: string, instances: number }>(`
    WITH gone_instances AS (
      DELETE FROM ${I} WHERE ${which} RETURNING ${i.id} AS id
    ), gone AS (
      DELETE FROM ${P} pr
      WHERE pr.${p.instanceId} IN (SELECT id FROM gone_instances)
        OR NOT EXISTS (SELECT 1 FROM ${I} live WHERE live.${i.id} = pr.${p.instanceId})
      RETURNING pr.${p.topic} AS topic, pr.${p.userId} AS user_id
    ), counts AS (
      SELECT topic, user_id, count(*)::int AS n FROM gone GROUP BY topic, user_id
    )
    UPDATE ${M} m SET ${m.instances} = m.${m.instances} - c.n FROM counts c
    WHERE m.${m.topic} = c.topic AND m.${m.userId} = c.user_id
    RETURNING m.${m.topic} AS topic, m.${m.userId} AS user_id, m.${m.userName} AS user, m.${m.instances} AS instances`,
  [options.instanceId ?? options.ttlSeconds ?? defaultTtlSeconds])
  const left = rows.filter((row) => row.instances <= 0)
  if (left.length > 0) await forgetZeros(db, left.map((row) => row.topic), left.map((row) => row.user_id))
  return left.map(({ topic, user }) => ({ topic, user }))
}

/** The store's statements on one database, as the presence tracker (src/presence-tracker.ts) uses them. */
export interface PresenceStore {
  enter(instanceId: string, topic: string, userId: number, userName: string): Promise<boolean>
  exit(instanceId: string, topic: string, userId: number): Promise<boolean>
  heartbeat(instanceId: string, options: { aliveForSeconds: number }): Promise<boolean>
  expireIn(instanceId: string, seconds: number): Promise<void>
  sweep(options?: { instanceId?: string, ttlSeconds?: number }): Promise<PresenceChange[]>
}

export function presenceStoreOn (db: Queryable): PresenceStore {
  return {
    enter: async (instanceId, topic, userId, userName) => await enter(db, instanceId, topic, userId, userName),
    exit: async (instanceId, topic, userId) => await exit(db, instanceId, topic, userId),
    heartbeat: async (instanceId, options) => await heartbeat(db, instanceId, options),
    expireIn: async (instanceId, seconds) => { await expireIn(db, instanceId, seconds) },
    sweep: async (options) => await sweep(db, options)
  }
}
