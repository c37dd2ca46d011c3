import { getTableName } from 'drizzle-orm'
import { commitTimeField, encodeMessages } from './bus-format.js'
import type { Queryable } from './db/database.js'
import { messages, topics } from './db/schema.js'
import type { MessageFrame } from './protocol.js'

/**
 * The message store: every message in Postgres, numbered per topic without gaps and in
 * commit order, and read back as history, catch-up ranges and older pages. The raw SQL
 * names its tables and columns from src/db/schema.ts, so the two cannot drift apart.
 */

export interface NewMessage {
  topic: string
  authorId: number
  author: string
  /** "" for a message of data alone. */
  text: string
  /** The program's JSON payload; undefined when there is none (never null). */
  data?: unknown
  /** Whether the author is a bot. */
  bot?: boolean
  /** The client's id for the message; a resend with the same ref stores nothing new. */
  ref: string | undefined
}

export interface PendingMessage extends NewMessage {
  /** The server's time of the publish. */
  at: Date
}

export interface StoredMessage {
  message: MessageFrame
  /** True when the ref had been used before: nothing new was stored. */
  duplicate: boolean
}

/** Where a batch's NOTIFY goes, and who sends it (so that it does not deliver its own twice). */
export interface NotifyOptions {
  channel: string
  instanceId: string
}

const M = getTableName(messages)
const T = getTableName(topics)
const m = {
  topic: messages.topic.name,
  id: messages.id.name,
  authorId: messages.authorId.name,
  author: messages.author.name,
  text: messages.text.name,
  data: messages.data.name,
  bot: messages.bot.name,
  ref: messages.ref.name,
  at: messages.at.name
}
const t = { name: topics.name.name, lastId: topics.lastId.name, lastAt: topics.lastAt.name }

interface MessageRow { topic: string, id: number, author: string, text: string, data: unknown, bot: boolean, at: Date }
const columns = `${m.topic} AS topic, ${m.id} AS id, ${m.author} AS author, ${m.text} AS text, ${m.data} AS data, ${m.bot} AS bot, ${m.at} AS at`

export function toFrame (row: MessageRow): MessageFrame {
  return withExtras({ type: 'message', topic: row.topic, id: row.id, author: row.author, text: row.text, at: row.at.toISOString() },
    row.data ?? undefined, row.bot)
}

/** A message frame with `data` and `bot` when it has them: the frame of any other message is left as it is. */
export function withExtras (frame: MessageFrame, data: unknown, bot: boolean | undefined): MessageFrame {
  if (data !== undefined) frame.data = data
  if (bot === true) frame.bot = true
  return frame
}

/**
 * Stores a batch of messages in one statement, so one transaction and one commit serve
 * them all (group commit). Each topic's sequence is bumped once under its row lock, in
 * topic order (no deadlock between instances), so ids within a topic are gapless and in
 * commit order, and its `lastAt` moves to its latest message's time under the same lock (the
 * directory reads topics by it; never backwards, should another instance's clock be behind). With `notify`, the same statement sends one NOTIFY per
 * topic, delivered at commit (src/bus-format.ts).
 *
 * A repeated ref fails the whole statement (unique index) and takes no sequence number.
 */
const insertBatchSql = `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $12::text[], $13::bool[])
    WITH ORDINALITY AS u(topic, author_id, author, text, ref, at, data, bot, ord)
), counts AS (
  SELECT topic, count(*)::int8 AS n, max(at) AS last_at FROM input GROUP BY topic
), seq AS (
  INSERT INTO ${T} AS t (${t.name}, ${t.lastId}, ${t.lastAt}) SELECT topic, n, last_at FROM counts ORDER BY topic
  ON CONFLICT (${t.name}) DO UPDATE SET ${t.lastId} = t.${t.lastId} + excluded.${t.lastId},
    ${t.lastAt} = greatest(t.${t.lastAt}, excluded.${t.lastAt})
  RETURNING ${t.name} AS name, ${t.lastId} AS last_id
), numbered AS (
  SELECT i.topic, s.last_id - c.n + row_number() OVER (PARTITION BY i.topic ORDER BY i.ord) AS id,
         i.author_id, i.author, i.text, i.data::jsonb AS data, coalesce(i.bot, false) AS bot, i.ref, i.at
  FROM input i JOIN seq s ON s.name = i.topic JOIN counts c ON c.topic = i.topic
), inserted AS (
  INSERT INTO ${M} (${m.topic}, ${m.id}, ${m.authorId}, ${m.author}, ${m.text}, ${m.data}, ${m.bot}, ${m.ref}, ${m.at})
  SELECT topic, id, author_id, author, text, data, bot, ref, at FROM numbered ORDER BY topic, id
  RETURNING 1
), notified AS (
  SELECT pg_notify($7, p.head || (s.last_id - c.n + 1) || $11::text
                       || round((extract(epoch FROM clock_timestamp()) * 1000)::numeric, 3) || p.tail)
  FROM unnest($8::text[], $9::text[], $10::text[]) AS p(topic, head, tail)
  JOIN seq s ON s.name = p.topic JOIN counts c ON c.topic = p.topic
)
SELECT s.name AS topic, s.last_id - c.n + 1 AS first_id,
       (SELECT count(*) FROM inserted)::int AS inserted, (SELECT count(*) FROM notified)::int AS notified
FROM seq s JOIN counts c ON c.topic = s.name`

/** Stores the batch; returns each message as stored, in the order given. */
export async function storeBatch (db: Queryable, batch: readonly PendingMessage[], notify?: NotifyOptions): Promise<MessageFrame[]> {
  const byTopic = new Map<string, PendingMessage[]>()
  for (const message of batch) {
    const list = byTopic.get(message.topic)
    if (list === undefined) byTopic.set(message.topic, [message])
    else list.push(message)
  }
  const heads: string[] = []
  const tails: string[] = []
  if (notify !== undefined) {
    for (const [topic, messages] of byTopic) {
      const { head, tail } = encodeMessages(notify.instanceId, topic, messages)
      heads.push(head)
      tails.push(tail)
    }
  }
  const rows = await db.query<{ topic: string, first_id: number }>(insertBatchSql, [
    batch.map((m) => m.topic), batch.map((m) => m.authorId), batch.map((m) => m.author),
    batch.map((m) => m.text), batch.map((m) => m.ref ?? null), batch.map((m) => m.at),
    notify?.channel ?? '', notify === undefined ? [] : [...byTopic.keys()], heads, tails, commitTimeField,
    // Data as JSON text, cast to jsonb by the statement; for a message without, a null check only.
    batch.map((m) => m.data === undefined ? null : JSON.stringify(m.data)), batch.map((m) => m.bot === true)
  ], 'canopy_store_batch')
  const nextId = new Map(rows.map((row) => [row.topic, row.first_id]))
  return batch.map((m) => {
    const id = nextId.get(m.topic)
    if (id === undefined) throw new Error(`the batch statement gave no id for topic ${m.topic}`)
    nextId.set(m.topic, id + 1)
    const frame: MessageFrame = { type: 'message', topic: m.topic, id, author: m.author, text: m.text, at: m.at.toISOString() }
    return m.data === undefined && m.bot !== true ? frame : withExtras(frame, m.data, m.bot)
  })
}

/** The first message of each author's ref, by `${authorId}\n${ref}`: what a resend is answered with. */
export async function findByRefs (db: Queryable, refs: ReadonlyArray<{ authorId: number, ref: string }>): Promise<Map<string, MessageFrame>> {
  const rows = await db.query<MessageRow & { author_id: number, ref: string }>(
    `SELECT ${columns}, r.author_id, r.ref FROM ${M}
     JOIN unnest($1::int[], $2::text[]) AS r(author_id, ref) ON ${M}.${m.authorId} = r.author_id AND ${M}.${m.ref} = r.ref`,
    [refs.map((r) => r.authorId), refs.map((r) => r.ref)])
  return new Map(rows.map((row) => [`${row.author_id}\n${row.ref}`, toFrame(row)]))
}

export interface History {
  messages: MessageFrame[]
  /** The topic's last id when the history was read (0 for a topic with no message yet). */
  lastId: number
  truncated: boolean
}

const lastIdOf = `coalesce((SELECT ${t.lastId} FROM ${T} WHERE ${t.name} = $1), 0) AS last_id`
const historyRecentSql = `SELECT h.*, ${lastIdOf} FROM (
  SELECT ${columns} FROM ${M} WHERE ${m.topic} = $1 ORDER BY ${m.id} DESC LIMIT $2) h
RIGHT JOIN (SELECT 1) one ON true ORDER BY h.id`
/**
 * Below what a row's frame takes: its text, and half of its data as jsonb prints it (with a
 * space after each separator, never more than half again its compact JSON).
 */
const rowBytes = `(octet_length(${m.text}) + coalesce(octet_length(${m.data}::text), 0) / 2)`
/**
 * Catch-up: the rows after `since`, cut once a lower bound of their frames passes the byte budget (the
 * encoded frames are larger still, so nothing the exact cut keeps is left out), with the
 * number of rows before that cut, so that the caller knows whether there are more.
 */
const historySinceSql = `SELECT h.*, ${lastIdOf} FROM (
  SELECT l.*, count(*) OVER () AS available FROM (
    SELECT ${columns}, sum(${rowBytes}) OVER (ORDER BY ${m.id}) - ${rowBytes} AS bytes_before
    FROM ${M} WHERE ${m.topic} = $1 AND ${m.id} > $2 ORDER BY ${m.id} LIMIT $3) l) h
RIGHT JOIN (SELECT 1) one ON true WHERE h.id IS NULL OR h.bytes_before < $4 ORDER BY h.id`

/**
 * The `limit` most recent messages, oldest first, or with `since`, the messages after that
 * id: at most `maxSince` of them and at most `maxSinceBytes` of encoded frames (the message
 * that crosses it is the last one in), `truncated` when there are more. The topic's last id
 * comes from the same snapshot.
 */
export async function readHistory (db: Queryable, topic: string, options: { limit: number } | { since: number, maxSince: number, maxSinceBytes: number }): Promise<History> {
  if ('limit' in options) {
    const rows = await db.query<MessageRow & { last_id: number }>(historyRecentSql, [topic, options.limit], 'canopy_history_recent')
    return { messages: rows.filter((row) => row.id !== null).map(toFrame), lastId: rows[0]?.last_id ?? 0, truncated: false }
  }
  const rows = await db.query<MessageRow & { last_id: number, available: number | null }>(historySinceSql,
    [topic, options.since, options.maxSince + 1, options.maxSinceBytes], 'canopy_history_since')
  const messages = withinReply(rows.filter((row) => row.id !== null).map(toFrame), options.maxSince, options.maxSinceBytes)
  return { messages, lastId: rows[0]?.last_id ?? 0, truncated: messages.length < (rows[0]?.available ?? 0) }
}

/**
 * The first messages of a catch-up that one reply carries: at most `maxMessages`, and at most
 * `maxBytes` of encoded frames, the message that crosses it being the last one in.
 */
export function withinReply (messages: readonly MessageFrame[], maxMessages: number, maxBytes: number): MessageFrame[] {
  const taken: MessageFrame[] = []
  let bytes = 0
  for (const message of messages) {
    if (taken.length === maxMessages || bytes >= maxBytes) break
    bytes += Buffer.byteLength(JSON.stringify(message))
    taken.push(message)
  }
  return taken
}

/** Up to `limit` messages with afterId < id ≤ toId (no upper bound without toId), oldest first: fills a gap. */
export async function readRange (db: Queryable, topic: string, afterId: number, toId: number | undefined, limit: number): Promise<MessageFrame[]> {
  const rows = await db.query<MessageRow>(
    `SELECT ${columns} FROM ${M} WHERE ${m.topic} = $1 AND ${m.id} > $2 AND ${m.id} <= coalesce($3, ${m.id}) ORDER BY ${m.id} LIMIT $4`,
    [topic, afterId, toId ?? null, limit])
  return rows.map(toFrame)
}

/** An older page for scrolling back: the `limit` messages before `before`, oldest first. */
export async function readPage (db: Queryable, topic: string, before: number | undefined, limit: number): Promise<MessageFrame[]> {
  const rows = before === undefined
    ? await db.query<MessageRow>(`SELECT ${columns} FROM ${M} WHERE ${m.topic} = $1 ORDER BY ${m.id} DESC LIMIT $2`, [topic, limit])
    : await db.query<MessageRow>(`SELECT ${columns} FROM ${M} WHERE ${m.topic} = $1 AND ${m.id} < $2 ORDER BY ${m.id} DESC LIMIT $3`, [topic, before, limit])
  return rows.reverse().map(toFrame)
}
