import type { Queryable } from './db/client.js'
import { isUniqueViolation } from './errors.js'
import type { MessageFrame } from './protocol.js'

export interface NewMessage {
  topic: string
  authorId: number
  author: string
  text: string
  /** The client's id for the message; a resend with the same ref stores nothing new. */
  ref: string | undefined
}

export interface StoredMessage {
  message: MessageFrame
  /** True when the ref had been used before: nothing new was stored. */
  duplicate: boolean
}

interface MessageRow { topic: string, id: number, author: string, text: string, at: Date }

const columns = 'topic, id, author, text, at'

export function toFrame (row: MessageRow): MessageFrame {
  return { type: 'message', topic: row.topic, id: row.id, author: row.author, text: row.text, at: row.at.toISOString() }
}

/**
 * Stores one message in one statement: the topic's sequence is bumped under its row lock and
 * the message inserted with it, so ids within a topic are gapless and in commit order. A
 * repeated ref fails the whole statement (the unique index), so no sequence number is lost.
 */
const insertSql = `
WITH seq AS (
  INSERT INTO topics AS t (name, last_id) VALUES ($1, 1)
  ON CONFLICT (name) DO UPDATE SET last_id = t.last_id + 1
  RETURNING last_id
)
INSERT INTO messages (topic, id, author_id, author, text, ref)
SELECT $1, last_id, $2, $3, $4, $5 FROM seq
RETURNING ${columns}`

export async function storeMessage (db: Queryable, input: NewMessage): Promise<StoredMessage> {
  try {
    const [row] = await db.query<MessageRow>(insertSql, [input.topic, input.authorId, input.author, input.text, input.ref ?? null])
    if (row === undefined) throw new Error('INSERT … RETURNING gave no row')
    return { message: toFrame(row), duplicate: false }
  } catch (error) {
    if (input.ref === undefined || !isUniqueViolation(error)) throw error
    const first = await findByRef(db, input.authorId, input.ref)
    if (first === undefined) throw error
    return { message: first, duplicate: true }
  }
}

export async function findByRef (db: Queryable, authorId: number, ref: string): Promise<MessageFrame | undefined> {
  const [row] = await db.query<MessageRow>(`SELECT ${columns} FROM messages WHERE author_id = $1 AND ref = $2`, [authorId, ref])
  return row === undefined ? undefined : toFrame(row)
}

export interface History {
  messages: MessageFrame[]
  /** The topic's last id when the history was read (0 for a topic with no message yet). */
  lastId: number
  truncated: boolean
}

/**
 * The `limit` most recent messages, oldest first, or with `since`, every message after that
 * id (at most `maxSince`), together with the topic's last id from the same snapshot.
 */
export async function readHistory (db: Queryable, topic: string, options: { limit: number } | { since: number, maxSince: number }): Promise<History> {
  const recent = 'limit' in options
  const rows = await db.query<MessageRow & { last_id: number }>(
    recent
      ? `SELECT m.*, coalesce((SELECT last_id FROM topics WHERE name = $1), 0) AS last_id FROM (
           SELECT ${columns} FROM messages WHERE topic = $1 ORDER BY id DESC LIMIT $2) m
         RIGHT JOIN (SELECT 1) one ON true ORDER BY m.id`
      : `SELECT m.*, coalesce((SELECT last_id FROM topics WHERE name = $1), 0) AS last_id FROM (
           SELECT ${columns} FROM messages WHERE topic = $1 AND id > $2 ORDER BY id LIMIT $3) m
         RIGHT JOIN (SELECT 1) one ON true ORDER BY m.id`,
    recent ? [topic, options.limit] : [topic, options.since, options.maxSince + 1]
  )
  const lastId = rows[0]?.last_id ?? 0
  const messages = rows.filter((row) => row.id !== null).map(toFrame)
  const truncated = !recent && messages.length > options.maxSince
  if (truncated) messages.length = options.maxSince
  return { messages, lastId, truncated }
}

/** Messages with afterId < id ≤ toId (or every one after afterId), oldest first: fills a gap. */
export async function readRange (db: Queryable, topic: string, afterId: number, toId?: number): Promise<MessageFrame[]> {
  const rows = toId === undefined
    ? await db.query<MessageRow>(`SELECT ${columns} FROM messages WHERE topic = $1 AND id > $2 ORDER BY id`, [topic, afterId])
    : await db.query<MessageRow>(`SELECT ${columns} FROM messages WHERE topic = $1 AND id > $2 AND id <= $3 ORDER BY id`, [topic, afterId, toId])
  return rows.map(toFrame)
}

/** An older page for scrolling back: the `limit` messages before `before`, oldest first. */
export async function readPage (db: Queryable, topic: string, before: number | undefined, limit: number): Promise<MessageFrame[]> {
  const rows = before === undefined
    ? await db.query<MessageRow>(`SELECT ${columns} FROM messages WHERE topic = $1 ORDER BY id DESC LIMIT $2`, [topic, limit])
    : await db.query<MessageRow>(`SELECT ${columns} FROM messages WHERE topic = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, [topic, before, limit])
  return rows.reverse().map(toFrame)
}
