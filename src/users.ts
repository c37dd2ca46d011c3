import type { Static } from '@sinclair/typebox'
import { asc, eq, gt, sql } from 'drizzle-orm'
import type { Orm, Queryable } from './db/database.js'
import { users } from './db/schema.js'
import { isUniqueViolation } from './errors.js'
import { usersPageSize, type UserSummary } from './protocol.js'

/**
 * Accounts: creating them, finding them by name, and what an administrator changes (admin,
 * disabled). A user is never deleted: a message keeps its author's id and name.
 */

export interface User {
  id: number
  name: string
  /** A bot, authenticated by its key (src/bots.ts): its messages carry `"bot": true`. */
  bot?: boolean
}

/** What an account may do right now, read from the database (never from the session). */
export interface Standing {
  admin: boolean
  disabled: boolean
}

const lowerName = sql`lower(${users.name})`
const disabled = sql<boolean>`${users.disabledAt} is not null`

/** Returns undefined when the name is taken, whatever its case. */
export async function createUser (orm: Orm, name: string, passwordHash: string): Promise<User | undefined> {
  try {
    const [user] = await orm.insert(users).values({ name, passwordHash }).returning({ id: users.id, name: users.name })
    return user
  } catch (error) {
    if (isUniqueViolation(error)) return undefined
    throw error
  }
}

/**
 * The user of that name, whatever its case, with what a login checks: `passwordHash` is
 * undefined for an account without a password (a bot, a user admitted by token), which no
 * password opens.
 */
export async function findUserByName (orm: Orm, name: string): Promise<(User & { passwordHash: string | undefined, disabled: boolean }) | undefined> {
  const [user] = await orm.select({ id: users.id, name: users.name, passwordHash: users.passwordHash, disabled })
    .from(users)
    .where(eq(lowerName, name.toLowerCase()))
  return user === undefined ? undefined : { ...user, passwordHash: user.passwordHash ?? undefined }
}

/** The password hash of a user, for a password change to check the current one. */
export async function passwordHashOf (orm: Orm, userId: number): Promise<string | undefined> {
  const [user] = await orm.select({ passwordHash: users.passwordHash }).from(users).where(eq(users.id, userId))
  return user?.passwordHash ?? undefined
}

/**
 * Whether a user is an administrator, and disabled: asked by every administrator's request
 * (a revoke holds at once), by primary key, as a prepared statement.
 */
export async function standingOf (db: Queryable, userId: number): Promise<Standing | undefined> {
  const [row] = await db.query<Standing>(
    'SELECT admin, disabled_at IS NOT NULL AS disabled FROM users WHERE id = $1', [userId], 'canopy_user_standing')
  return row
}

/** Makes a user an administrator or not, and says whether they were one before (the row as it was, joined). */
const setAdminSql = `
UPDATE users SET admin = $2 FROM users AS before
WHERE before.id = users.id AND lower(users.name) = lower($1)
RETURNING users.id, users.name, before.admin AS was`

/**
 * Makes the user of that name an administrator or not (`npm run admin`): the user and whether
 * they were one before; undefined for a name nobody has.
 */
export async function setAdmin (db: Queryable, name: string, admin: boolean): Promise<{ user: User, wasAdmin: boolean } | undefined> {
  const [row] = await db.query<{ id: number, name: string, was: boolean }>(setAdminSql, [name, admin])
  return row === undefined ? undefined : { user: { id: row.id, name: row.name }, wasAdmin: row.was }
}

/**
 * A disable and the end of every session of the user, in one statement: no session of the
 * user outlives it. A session stored by a login that checked the user just before is refused
 * when read (src/session-store.ts). Disabling a disabled user keeps when it was first disabled.
 */
const disableSql = `
WITH target AS (
  UPDATE users SET disabled_at = coalesce(disabled_at, now()) WHERE lower(name) = lower($1) RETURNING id, name
), ended AS (
  DELETE FROM sessions WHERE user_id IN (SELECT id FROM target) RETURNING user_id, sid
)
SELECT target.id, target.name, ended.sid FROM target LEFT JOIN ended ON ended.user_id = target.id`

/** Disables the user of that name: the user, and the ids of the sessions ended; undefined for a name nobody has. */
export async function disableUser (db: Queryable, name: string): Promise<{ user: User, endedSessions: string[] } | undefined> {
  const rows = await db.query<{ id: number, name: string, sid: string | null }>(disableSql, [name])
  const [first] = rows
  if (first === undefined) return undefined
  return { user: { id: first.id, name: first.name }, endedSessions: rows.flatMap((row) => row.sid === null ? [] : [row.sid]) }
}

/** Enables the user of that name again; undefined for a name nobody has. */
export async function enableUser (orm: Orm, name: string): Promise<User | undefined> {
  const [user] = await orm.update(users).set({ disabledAt: null }).where(eq(lowerName, name.toLowerCase()))
    .returning({ id: users.id, name: users.name })
  return user
}

/**
 * A page of users by name without regard to case, those after `after` (a name, in any
 * case): read from the unique index on lower(name), so every page costs the same.
 */
export async function listUsers (orm: Orm, { after, limit = usersPageSize }: { after?: string | undefined, limit?: number }): Promise<Array<Static<typeof UserSummary>>> {
  const rows = await orm.select({ name: users.name, admin: users.admin, disabled, createdAt: users.createdAt })
    .from(users)
    .where(after === undefined ? undefined : gt(lowerName, after.toLowerCase()))
    .orderBy(asc(lowerName))
    .limit(limit)
  return rows.map((row) => ({ ...row, createdAt: row.createdAt.toISOString() }))
}

/**
 * A new password hash and the end of every other session of the user, in one statement;
 * returns the ids of the sessions ended. `keepSessionId`, the caller's session, lives on.
 */
const changePasswordSql = `
WITH changed AS (UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING id)
DELETE FROM sessions WHERE user_id IN (SELECT id FROM changed) AND sid <> $3 RETURNING sid`

export async function changePassword (db: Queryable, { userId, passwordHash, keepSessionId }: { userId: number, passwordHash: string, keepSessionId: string }): Promise<string[]> {
  const rows = await db.query<{ sid: string }>(changePasswordSql, [userId, passwordHash, keepSessionId])
  return rows.map((row) => row.sid)
}
