import { getTableName } from 'drizzle-orm'
import type { Queryable } from './db/database.js'
import { instances, presence, topicMembers } from './db/schema.js'

/**
 * Presence in Postgres, shared by every instance: a row per instance where a user is in a
 * topic, a count of those rows per user and topic (whose lock decides who says joined and
 * left), and each instance's heartbeat. Writes happen when a user's first connection on an
 * instance enters a topic or its last one leaves, and once per heartbeat: never per message
 * or ping. The SQL names its tables and columns from src/db/schema.ts.
 */

const I = getTableName(instances)
const P = getTableName(presence)
const M = getTableName(topicMembers)
const i = { id: instances.id.name, heartbeatAt: instances.heartbeatAt.name }
const p = { topic: presence.topic.name, userId: presence.userId.name, instanceId: presence.instanceId.name }
const m = { topic: topicMembers.topic.name, userId: topicMembers.userId.name, userName: topicMembers.userName.name, instances: topicMembers.instances.name }

/** A user entered or left a topic for everyone (not just on one instance). */
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

/** This instance no longer has the user in the topic; true when no instance has now (left). */
export async function exit (db: Queryable, instanceId: string, topic: string, userId: number): Promise<boolean> {
  const rows = await db.query<{ instances: number }>(`
    WITH mine AS (
      DELETE FROM ${P} WHERE ${p.topic} = $1 AND ${p.userId} = $2 AND ${p.instanceId} = $3 RETURNING 1
    )
    UPDATE ${M} m SET ${m.instances} = m.${m.instances} - 1 FROM mine
    WHERE m.${m.topic} = $1 AND m.${m.userId} = $2
    RETURNING m.${m.instances} AS instances`, [topic, userId, instanceId], 'canopy_presence_exit')
  return rows[0]?.instances === 0
}

/** The users in a topic now, on any instance. */
export async function presentIn (db: Queryable, topic: string): Promise<string[]> {
  const rows = await db.query<{ name: string }>(
    `SELECT ${m.userName} AS name FROM ${M} WHERE ${m.topic} = $1 AND ${m.instances} > 0`, [topic], 'canopy_presence_of_topic')
  return rows.map((row) => row.name)
}

/**
 * This instance is alive. True when its row had to be made anew: the first beat, or after
 * other instances took it for dead (its presence is gone and must be entered again).
 */
export async function heartbeat (db: Queryable, instanceId: string): Promise<boolean> {
  const rows = await db.query<{ made: boolean }>(`
    INSERT INTO ${I} (${i.id}, ${i.heartbeatAt}) VALUES ($1, now())
    ON CONFLICT (${i.id}) DO UPDATE SET ${i.heartbeatAt} = now()
    RETURNING xmax = 0 AS made`, [instanceId], 'canopy_presence_heartbeat')
  return rows[0]?.made === true
}

/**
 * Removes the instances whose heartbeat is older than `ttlSeconds` (or the one given: this
 * instance, leaving), and their presence; returns who left for everyone with them.
 */
export async function removeInstances (db: Queryable, options: { olderThanSeconds: number } | { instanceId: string }): Promise<PresenceChange[]> {
  const which = 'instanceId' in options
    ? `${i.id} = $1`
    : `${i.heartbeatAt} < now() - make_interval(secs => $1)`
  const rows = await db.query<{ topic: string, user: string }>(`
    WITH gone_instances AS (
      DELETE FROM ${I} WHERE ${which} RETURNING ${i.id} AS id
    ), gone AS (
      DELETE FROM ${P} USING gone_instances g WHERE ${P}.${p.instanceId} = g.id
      RETURNING ${P}.${p.topic} AS topic, ${P}.${p.userId} AS user_id
    ), counts AS (
      SELECT topic, user_id, count(*)::int AS n FROM gone GROUP BY topic, user_id
    )
    UPDATE ${M} m SET ${m.instances} = m.${m.instances} - c.n FROM counts c
    WHERE m.${m.topic} = c.topic AND m.${m.userId} = c.user_id
    RETURNING m.${m.topic} AS topic, m.${m.userName} AS user, m.${m.instances} AS instances`,
  ['instanceId' in options ? options.instanceId : options.olderThanSeconds])
  return rows.filter((row) => (row as { instances?: number }).instances === 0).map(({ topic, user }) => ({ topic, user }))
}
