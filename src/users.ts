import { eq, sql } from 'drizzle-orm'
import type { Orm } from './db/database.js'
import { users } from './db/schema.js'
import { isUniqueViolation } from './errors.js'

export interface User { id: number, name: string }

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

export async function findUserByName (orm: Orm, name: string): Promise<(User & { passwordHash: string }) | undefined> {
  const [user] = await orm.select({ id: users.id, name: users.name, passwordHash: users.passwordHash })
    .from(users)
    .where(eq(sql`lower(${users.name})`, name.toLowerCase()))
  return user
}
