import { getTableName } from 'drizzle-orm'
import type { Queryable } from './db/database.js'
import { readPositions, topicMembers, topicPresence, topics, users } from './db/schema.js'
import { maxJoinedTopics, maxListedTopics, maxUnreadCount } from './protocol.js'

/**
 * The topic directory: the topics a user has joined, then the other public topics with
 * messages, each part most recently active first, with how much of each the user has not read; and
 * each user's read positions, kept in Postgres so they follow the user to every device and
 * instance. Ids are gapless per topic, so what is unread is the distance from the read
 * position to the topic's last id. The SQL names its tables and columns from src/db/schema.ts.
 *
 * What one answer costs does not grow with the number of topics: the others are the top of
 * an index on the public topics' last activity (`last_at`, kept by the batch statement of
 * src/message-store.ts), the joined ones are found from the user's own rows.
 *
 * A private topic (a direct-message topic too) is listed to its members only: it is joined
 * by being a member, with messages or not, and a read position or presence left in one by a
 * user who is no longer a member lists nothing. The statement reads the members from the
 * table, not from the access module's cache: it is one read either way, and always current.
 */

const T = getTableName(topics)
const R = getTableName(readPositions)
const J = getTableName(topicPresence)
const M = getTableName(topicMembers)
const U = getTableName(users)
const t = { name: topics.name.name, lastId: topics.lastId.name, lastAt: topics.lastAt.name, visibility: topics.visibility.name, kind: topics.kind.name }
const r = { userId: readPositions.userId.name, topic: readPositions.topic.name, lastReadId: readPositions.lastReadId.name }
const j = { userId: topicPresence.userId.name, topic: topicPresence.topic.name }
const m = { userId: topicMembers.userId.name, topic: topicMembers.topic.name }
const u = { id: users.id.name, name: users.name.name }

/** GET /api/topics per user and instance: a page polls it once a minute; a reload or a reconnect of every tab at once fits in the burst. */
export const directoryReadsPerSecond = 1
export const directoryReadBurst = 20

export interface TopicSummary {
  name: string
  lastId: number
  lastAt: string
  unread: number
  visibility: 'public' | 'private'
  /** Only on a direct-message topic. */
  kind?: 'dm'
  /** A direct-message topic's members, sorted by name. */
  members?: string[]
}

/**
 * Joined: the user has a read position in the topic, or is subscribed to it now on some
 * instance (a row of topic_presence, which goes when the user's presence there ends), or is a
 * member of it; a private topic only in the last case. The others are read from the top of
 * topics_public_last_at_idx: as many rows as may be listed plus as many as the joined part
 * may hold (those are not listed twice), however many topics there are, private ones included.
 * A direct-message topic's member names come with it (the joined part is bounded, and so are
 * the members of a direct-message topic).
 */
const listTopicsSql = `
WITH joined AS (
  SELECT t.${t.name} AS name, t.${t.lastId} AS last_id, t.${t.lastAt} AS last_at, t.${t.visibility} AS visibility, t.${t.kind} AS kind
  FROM (SELECT ${r.topic} AS topic FROM ${R} WHERE ${r.userId} = $1
        UNION SELECT ${j.topic} FROM ${J} WHERE ${j.userId} = $1
        UNION SELECT ${m.topic} FROM ${M} WHERE ${m.userId} = $1) mine
  JOIN ${T} t ON t.${t.name} = mine.topic
  LEFT JOIN ${M} member ON member.${m.topic} = t.${t.name} AND member.${m.userId} = $1
  WHERE t.${t.visibility} = 'public' OR member.${m.userId} IS NOT NULL
  ORDER BY t.${t.lastAt} DESC, t.${t.name} LIMIT $2
), others AS (
  SELECT top.* FROM (
    SELECT ${t.name} AS name, ${t.lastId} AS last_id, ${t.lastAt} AS last_at, ${t.visibility} AS visibility, ${t.kind} AS kind FROM ${T}
    WHERE ${t.lastId} > 0 AND ${t.visibility} = 'public' ORDER BY ${t.lastAt} DESC, ${t.name} LIMIT $3
  ) top WHERE top.name NOT IN (SELECT name FROM joined)
  ORDER BY top.last_at DESC, top.name LIMIT $4
), listed AS (
  SELECT 0 AS part, * FROM joined UNION ALL SELECT 1 AS part, * FROM others
)
SELECT l.name, l.last_id, l.last_at, l.visibility, l.kind, least(l.last_id - coalesce(p.${r.lastReadId}, 0), $5::int8) AS unread,
  CASE WHEN l.kind = 'dm' THEN (
    SELECT json_agg(u.${u.name} ORDER BY u.${u.name} COLLATE "C") FROM ${M} dm JOIN ${U} u ON u.${u.id} = dm.${m.userId} WHERE dm.${m.topic} = l.name
  ) END AS members
FROM listed l LEFT JOIN ${R} p ON p.${r.userId} = $1 AND p.${r.topic} = l.name
ORDER BY l.part, l.last_at DESC, l.name`

interface DirectoryRow {
  name: string
  last_id: number
  last_at: Date
  visibility: 'public' | 'private'
  kind: string | null
  unread: number
  /** json: PGlite and pg both parse it. */
  members: string[] | null
}

/**
 * The user's joined topics (at most maxJoinedTopics, with messages or not), then up to
 * maxListedTopics other public topics with messages, each part most recently active first.
 */
export async function listTopics (db: Queryable, userId: number): Promise<TopicSummary[]> {
  const rows = await db.query<DirectoryRow>(listTopicsSql,
    [userId, maxJoinedTopics, maxListedTopics + maxJoinedTopics, maxListedTopics, maxUnreadCount], 'canopy_list_topics')
  return rows.map((row) => {
    const summary: TopicSummary = { name: row.name, lastId: row.last_id, lastAt: row.last_at.toISOString(), unread: Math.max(0, row.unread), visibility: row.visibility }
    return row.kind === 'dm' ? { ...summary, kind: 'dm', members: row.members ?? [] } : summary
  })
}

/**
 * The user has read `topic` up to `id` (past the last message: up to the last); never
 * backwards. False, and nothing stored, when the topic does not exist.
 */
export async function markRead (db: Queryable, userId: number, topic: string, id: number): Promise<boolean> {
  const rows = await db.query(`
    INSERT INTO ${R} AS r (${r.userId}, ${r.topic}, ${r.lastReadId})
    SELECT $1, ${t.name}, least($3::int8, ${t.lastId}) FROM ${T} WHERE ${t.name} = $2
    ON CONFLICT (${r.userId}, ${r.topic}) DO UPDATE SET ${r.lastReadId} = greatest(r.${r.lastReadId}, excluded.${r.lastReadId})
    RETURNING 1`,
  [userId, topic, id], 'canopy_mark_read')
  return rows.length > 0
}
