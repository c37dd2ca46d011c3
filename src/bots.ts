import { createHash, randomBytes } from 'node:crypto'
import { and, asc, count, eq, sql } from 'drizzle-orm'
import type { Database, Queryable } from './db/database.js'
import { botKeys, users } from './db/schema.js'
import type { User } from './users.js'

/**
 * Bots: programs with a key, made by a user (their owner). A bot is a users row of kind `bot`
 * (its name from the users' namespace); its key is random, shown once, and only its SHA-256
 * is stored (bot_keys): a 256-bit random key is no password to guess, so a fast hash is
 * enough, and it lets one indexed lookup find the bot of a key. Revoking deletes the key.
 */

/** What every key starts with, so that a key is told from a token, and a leaked one is recognised. */
export const botKeyPrefix = 'cnp_'
const keyBytes = 32
/** A bot key as it travels: the prefix, then 32 random bytes in base64url. */
const botKeyPattern = /^cnp_[A-Za-z0-9_-]{43}$/
/** Bots with a live key one user may have at once; another is refused (409 `too_many_bots`). */
export const maxBotsPerOwner = 20

export function newBotKey (): string {
  return botKeyPrefix + randomBytes(keyBytes).toString('base64url')
}

/** Whether a credential has the shape of a bot key (src/tokens.ts tells a token by its own). */
export function looksLikeBotKey (credential: string): boolean {
  return botKeyPattern.test(credential)
}

/** The hash a key is stored and looked up by: SHA-256, hex. */
export function botKeyHash (key: string): string {
  return createHash('sha256').update(key).digest('hex')
}

export type BotCreation =
  | { ok: true, bot: { id: number, name: string }, key: string }
  | { ok: false, code: 'name_taken' | 'too_many_bots' }

/**
 * Makes a bot of `name` for its owner, with a new key, in one transaction that holds the
 * owner's row: two creations at once cannot both pass maxBotsPerOwner.
 */
export async function createBot (db: Pick<Database, 'orm'>, owner: User, name: string): Promise<BotCreation> {
  const key = newBotKey()
  return await db.orm.transaction(async (tx) => {
    await tx.select({ id: users.id }).from(users).where(eq(users.id, owner.id)).for('update')
    const [live] = await tx.select({ count: count() }).from(users).innerJoin(botKeys, eq(botKeys.userId, users.id))
      .where(eq(users.ownerId, owner.id))
    if ((live?.count ?? 0) >= maxBotsPerOwner) return { ok: false, code: 'too_many_bots' } as const
    const [bot] = await tx.insert(users).values({ name, kind: 'bot', ownerId: owner.id })
      .onConflictDoNothing().returning({ id: users.id, name: users.name })
    if (bot === undefined) return { ok: false, code: 'name_taken' } as const
    await tx.insert(botKeys).values({ userId: bot.id, keyHash: botKeyHash(key) })
    return { ok: true, bot, key } as const
  })
}

/** The owner's bots that have a live key, by name. */
export async function listBots (db: Pick<Database, 'orm'>, ownerId: number): Promise<Array<{ name: string, createdAt: string }>> {
  const rows = await db.orm.select({ name: users.name, createdAt: botKeys.createdAt })
    .from(users).innerJoin(botKeys, eq(botKeys.userId, users.id))
    .where(eq(users.ownerId, ownerId))
    .orderBy(asc(sql`lower(${users.name})`))
  return rows.map((row) => ({ name: row.name, createdAt: row.createdAt.toISOString() }))
}

/** The bot of that name (whatever its case) and its owner; undefined when no bot has it. */
export async function findBot (db: Pick<Database, 'orm'>, name: string): Promise<{ id: number, name: string, ownerId: number } | undefined> {
  const [bot] = await db.orm.select({ id: users.id, name: users.name, ownerId: users.ownerId }).from(users)
    .where(and(eq(sql`lower(${users.name})`, name.toLowerCase()), eq(users.kind, 'bot')))
  return bot === undefined || bot.ownerId === null ? undefined : { ...bot, ownerId: bot.ownerId }
}

/** Deletes the bot's key; false when it had none (revoked before). */
export async function revokeBotKey (db: Pick<Database, 'orm'>, botId: number): Promise<boolean> {
  const deleted = await db.orm.delete(botKeys).where(eq(botKeys.userId, botId)).returning({ userId: botKeys.userId })
  return deleted.length > 0
}

/** The ids of the owner's bots (for a disable, whose bots' sockets close with theirs). */
export async function botIdsOf (db: Queryable, ownerId: number): Promise<number[]> {
  const rows = await db.query<{ id: number }>('SELECT id FROM users WHERE owner_id = $1', [ownerId])
  return rows.map((row) => row.id)
}

/** The bot a key opens, or why none: one indexed query, by the key's hash, with the bot's and its owner's standing. */
const botOfKeySql = `
SELECT bot.id, bot.name, bot.disabled_at IS NOT NULL AS disabled, owner.disabled_at IS NOT NULL AS owner_disabled
FROM bot_keys AS k JOIN users AS bot ON bot.id = k.user_id LEFT JOIN users AS owner ON owner.id = bot.owner_id
WHERE k.key_hash = $1`

export type KeyOutcome = { ok: true, user: User } | { ok: false, message: string }

export async function botOfKey (db: Queryable, key: string): Promise<KeyOutcome> {
  const [row] = await db.query<{ id: number, name: string, disabled: boolean, owner_disabled: boolean }>(
    botOfKeySql, [botKeyHash(key)], 'canopy_bot_of_key')
  if (row === undefined) return { ok: false, message: 'Unknown or revoked key' }
  if (row.disabled) return { ok: false, message: 'This bot is disabled by an administrator' }
  if (row.owner_disabled) return { ok: false, message: "This bot's owner is disabled by an administrator: its key does not work meanwhile" }
  return { ok: true, user: { id: row.id, name: row.name, bot: true } }
}

/**
 * Of these users of program sockets (bots and token users), those still admitted: enabled,
 * and for a bot, with a key and an enabled owner. The check that cannot be lost, behind the
 * `revoked` event (plugins/session-sockets.ts).
 */
const stillAdmittedSql = `
SELECT u.id FROM users AS u LEFT JOIN users AS owner ON owner.id = u.owner_id
WHERE u.id = ANY($1::int[]) AND u.disabled_at IS NULL
  AND (u.kind <> 'bot' OR (owner.disabled_at IS NULL AND EXISTS (SELECT 1 FROM bot_keys AS k WHERE k.user_id = u.id)))`

export async function stillAdmitted (db: Queryable, userIds: number[]): Promise<Set<number>> {
  const rows = await db.query<{ id: number }>(stillAdmittedSql, [userIds])
  return new Set(rows.map((row) => row.id))
}
