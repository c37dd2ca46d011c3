import { sql } from 'drizzle-orm'
import { bigint, boolean, check, doublePrecision, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core'

export const users = pgTable('users', {
  id: integer('id').primaryKey().generatedAlwaysAsIdentity(),
  /** Shown as registered; unique without regard to case. */
  name: text('name').notNull(),
  /** Null for an account that has no password: a bot, or a user admitted by token. */
  passwordHash: text('password_hash'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  /**
   * `password`: registered, logs in with a password; `bot`: a program with a key, made by its
   * owner; `token`: an application's own user, admitted by a signed token (first sight makes it).
   */
  kind: text('kind').notNull().default('password'),
  /** A bot's owner: the user who made it. Null for every other kind. */
  ownerId: integer('owner_id'),
  /** Granted and revoked by `npm run admin` only. */
  admin: boolean('admin').notNull().default(false),
  /** Set by an administrator: the user cannot log in and has no session; null while enabled. */
  disabledAt: timestamp('disabled_at', { withTimezone: true })
}, (t) => [
  uniqueIndex('users_name_lower_key').on(sql`lower(${t.name})`),
  index('users_owner_id_idx').on(t.ownerId).where(sql`owner_id is not null`),
  check('users_kind_check', sql`${t.kind} in ('password', 'bot', 'token')`)
])

/** A bot's key, stored only as its hash (SHA-256 of a random key: a key is no password to guess). Revoking deletes it. */
export const botKeys = pgTable('bot_keys', {
  userId: integer('user_id').primaryKey().references(() => users.id, { onDelete: 'cascade' }),
  keyHash: text('key_hash').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow()
}, (t) => [
  uniqueIndex('bot_keys_key_hash_key').on(t.keyHash)
])

export const sessions = pgTable('sessions', {
  sid: text('sid').primaryKey(),
  userId: integer('user_id').references(() => users.id, { onDelete: 'cascade' }),
  data: jsonb('data').notNull(),
  expiresAt: timestamp('expires_at', { withTimezone: true }).notNull()
}, (t) => [
  index('sessions_expires_at_idx').on(t.expiresAt),
  index('sessions_user_id_idx').on(t.userId)
])

/**
 * One row per topic that exists (it has messages, subscribers or was created); `lastId` is
 * bumped under the row lock in the publishing transaction, so message ids in a topic are
 * gapless and in commit order.
 */
export const topics = pgTable('topics', {
  name: text('name').primaryKey(),
  lastId: bigint('last_id', { mode: 'number' }).notNull().default(0),
  /**
   * When the topic was last active: its latest message, or its creation while it has none.
   * Kept by the batch statement, so the directory reads the most recently active topics
   * from an index instead of joining every topic to its last message.
   */
  lastAt: timestamp('last_at', { withTimezone: true }).notNull().defaultNow(),
  /**
   * `public`: any logged-in user reads and writes it; `private`: its members only
   * (topic_members). Fixed when the topic comes into being.
   */
  visibility: text('visibility').notNull().default('public'),
  /** `dm` for a direct-message topic (private, its members fixed); null otherwise. */
  kind: text('kind'),
  /** Who created a private topic on purpose; null for a public topic made by its first use. */
  createdBy: integer('created_by')
}, (t) => [
  // The directory's others: public topics with messages, most recently active first, read from
  // the top; private topics are not in it, so however many there are, none is read and skipped.
  index('topics_public_last_at_idx').on(t.lastAt.desc().nullsFirst(), t.name).where(sql`last_id > 0 and visibility = 'public'`),
  check('topics_visibility_check', sql`${t.visibility} in ('public', 'private')`),
  check('topics_kind_check', sql`${t.kind} is null or (${t.kind} = 'dm' and ${t.visibility} = 'private')`)
])

/**
 * No foreign keys: a key check is a query per inserted row, run while the batch holds its
 * topics' row locks, so every instance waiting for those topics waits for it too (a third of
 * a 70-message batch's statement time, measured). The batch statement makes each topic's row
 * before its messages (src/message-store.ts), and users are never deleted (a message keeps
 * its author's name).
 */
export const messages = pgTable('messages', {
  topic: text('topic').notNull(),
  /** The per-topic sequence: what clients see as the message `id`. */
  id: bigint('id', { mode: 'number' }).notNull(),
  authorId: integer('author_id').notNull(),
  /** The author's name as registered, kept with the message so history needs no join. */
  author: text('author').notNull(),
  text: text('text').notNull(),
  /** A program's JSON payload (`data`), with or instead of `text`; null when there is none. */
  data: jsonb('data'),
  /** Whether the author is a bot, kept with the message as its name is. */
  bot: boolean('bot').notNull().default(false),
  /** The client's id for the message: a resend with the same ref stores nothing new. */
  ref: text('ref'),
  at: timestamp('at', { withTimezone: true }).notNull().defaultNow()
}, (t) => [
  primaryKey({ columns: [t.topic, t.id] }),
  uniqueIndex('messages_author_ref_key').on(t.authorId, t.ref)
])

/**
 * Each user's publish token bucket, shared by every instance: instances lease tokens from
 * it in small batches (src/publish-limiter.ts).
 */
export const publishBuckets = pgTable('publish_buckets', {
  userId: integer('user_id').primaryKey().references(() => users.id, { onDelete: 'cascade' }),
  tokens: doublePrecision('tokens').notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull(),
  /** What the last lease granted; read back by the leasing statement's RETURNING. */
  granted: integer('granted').notNull()
})

/**
 * Fixed-window counters of login and registration attempts, shared by every instance
 * (src/attempt-limiter.ts): one row per key (kind, client address, name), counted in one
 * upsert per attempt. Rows whose window has ended count nothing and are swept.
 */
export const attemptCounters = pgTable('attempt_counters', {
  key: text('key').primaryKey(),
  attempts: integer('attempts').notNull(),
  windowEndsAt: timestamp('window_ends_at', { withTimezone: true }).notNull()
}, (t) => [
  index('attempt_counters_window_ends_at_idx').on(t.windowEndsAt)
])

/**
 * Every running instance and its heartbeat (src/presence-tracker.ts): `aliveUntil` is the
 * time until which its last beat vouches for it, by its own PRESENCE_TTL, so instances with
 * different TTLs judge each other rightly. An instance past it stopped without saying
 * goodbye, and whichever instance sees that removes its presence. `heartbeatAt` is the last
 * beat's time; a row without `aliveUntil` was written by a version before it (during a
 * rolling upgrade) and is judged by the sweeping instance's TTL.
 */
export const instances = pgTable('instances', {
  id: text('id').primaryKey(),
  heartbeatAt: timestamp('heartbeat_at', { withTimezone: true }).notNull(),
  aliveUntil: timestamp('alive_until', { withTimezone: true })
}, (t) => [
  index('instances_heartbeat_at_idx').on(t.heartbeatAt)
])

/** Where each user is in each topic: one row per instance that has a connection of theirs there. */
export const presence = pgTable('presence', {
  topic: text('topic').notNull(),
  userId: integer('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  instanceId: text('instance_id').notNull()
}, (t) => [
  primaryKey({ columns: [t.topic, t.userId, t.instanceId] }),
  index('presence_instance_id_idx').on(t.instanceId)
])

/**
 * Who is in each topic now, across instances: `instances` counts the user's presence rows,
 * under this row's lock, so exactly one instance sees it go from 0 to 1 (joined) and 1 to 0
 * (left). (Called topic_members before private topics gave "member" its own meaning.)
 */
export const topicPresence = pgTable('topic_presence', {
  topic: text('topic').notNull(),
  userId: integer('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  userName: text('user_name').notNull(),
  instances: integer('instances').notNull()
}, (t) => [
  primaryKey({ columns: [t.topic, t.userId] }),
  // The directory's own part: the topics a user is in now.
  index('topic_presence_user_id_idx').on(t.userId)
])

/** The members of each private topic and direct-message topic, with their role there. */
export const topicMembers = pgTable('topic_members', {
  topic: text('topic').notNull().references(() => topics.name, { onDelete: 'cascade' }),
  userId: integer('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  /** `owner` (adds and removes members) or `member`. */
  role: text('role').notNull(),
  addedAt: timestamp('added_at', { withTimezone: true }).notNull().defaultNow()
}, (t) => [
  primaryKey({ columns: [t.topic, t.userId] }),
  // A user's private topics, for the directory.
  index('topic_members_user_id_idx').on(t.userId),
  check('topic_members_role_check', sql`${t.role} in ('owner', 'member')`)
])

/** How far each user has read each topic: a message id that never moves backwards. */
export const readPositions = pgTable('read_positions', {
  userId: integer('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  topic: text('topic').notNull(),
  lastReadId: bigint('last_read_id', { mode: 'number' }).notNull()
}, (t) => [
  primaryKey({ columns: [t.userId, t.topic] })
])
