import { getTableName } from 'drizzle-orm'
import type { Queryable } from './db/database.js'
import { messages, readPositions, topics } from './db/schema.js'
import { maxListedTopics, maxUnreadCount } from './protocol.js'

/**
 * The topic directory: every topic with messages, most recently active first, with how much
 * of it a user has not read; and each user's read positions, kept in Postgres so they follow
 * the user to every device and instance. Ids are gapless per topic, so what is unread is the
 * distance from the read position to the topic's last id. The SQL names its tables and
 * columns from src/db/schema.ts.
 */

const T = getTableName(topics)
const M = getTableName(messages)
const R = getTableName(readPositions)
const t = { name: topics.name.name, lastId: topics.lastId.name }
const m = { topic: messages.topic.name, id: messages.id.name, at: messages.at.name }
const r = { userId: readPositions.userId.name, topic: readPositions.topic.name, lastReadId: readPositions.lastReadId.name }

export interface TopicSummary {
  name: string
  lastId: number
  lastAt: string
  unread: number
}

export async function listTopics (db: Queryable, userId: number): Promise<TopicSummary[]> {
  const rows = await db.query<{ name: string, last_id: number, last_at: Date, unread: number }>(`
    SELECT t.${t.name} AS name, t.${t.lastId} AS last_id, last.${m.at} AS last_at,
           least(t.${t.lastId} - coalesce(r.${r.lastReadId}, 0), $2::int8) AS unread
    FROM ${T} t
    JOIN ${M} last ON last.${m.topic} = t.${t.name} AND last.${m.id} = t.${t.lastId}
    LEFT JOIN ${R} r ON r.${r.topic} = t.${t.name} AND r.${r.userId} = $1
    WHERE t.${t.lastId} > 0
    ORDER BY last.${m.at} DESC, t.${t.name}
    LIMIT $3`, [userId, maxUnreadCount, maxListedTopics], 'canopy_list_topics')
  return rows.map((row) => ({ name: row.name, lastId: row.last_id, lastAt: row.last_at.toISOString(), unread: Math.max(0, row.unread) }))
}

/** The user has read `topic` up to `id` (past the last message: up to the last); never backwards. */
export async function markRead (db: Queryable, userId: number, topic: string, id: number): Promise<void> {
  await db.query(`
    INSERT INTO ${R} AS r (${r.userId}, ${r.topic}, ${r.lastReadId})
    SELECT $1, $2, least($3::int8, coalesce((SELECT ${t.lastId} FROM ${T} WHERE ${t.name} = $2), 0))
    ON CONFLICT (${r.userId}, ${r.topic}) DO UPDATE SET ${r.lastReadId} = greatest(r.${r.lastReadId}, excluded.${r.lastReadId})`,
  [userId, topic, id], 'canopy_mark_read')
}
