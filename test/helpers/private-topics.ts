import type { FastifyInstance } from 'fastify'
import type { Role } from '../../src/access.js'
import type { ServerFrame } from '../../src/protocol.js'
import type { ChatClient } from './chat.js'

/** A user as the tests hold one: its id and name. */
export interface Someone {
  id: number
  username: string
}

/**
 * Private topics made the way the HTTP routes make them (rows, then the access module told),
 * for tests of what reads and delivers them.
 */

/** A private topic owned by `owner`, with `members` besides. */
export async function makePrivateTopic (app: FastifyInstance, name: string, owner: Someone, members: Someone[] = []): Promise<void> {
  await app.db.query("INSERT INTO topics (name, visibility, created_by) VALUES ($1, 'private', $2)", [name, owner.id])
  await app.db.query("INSERT INTO topic_members (topic, user_id, role) VALUES ($1, $2, 'owner')", [name, owner.id])
  for (const member of members) await app.db.query("INSERT INTO topic_members (topic, user_id, role) VALUES ($1, $2, 'member')", [name, member.id])
  app.access.created(name, undefined, [[owner.id, 'owner'], ...members.map((member): [number, Role] => [member.id, 'member'])])
}

/** Adds a member (or changes a member's role), committed, then announced on every instance. */
export async function setMember (app: FastifyInstance, topic: string, user: Someone, by: Someone, role: Role = 'member'): Promise<void> {
  const [before] = await app.db.query<{ role: Role }>('SELECT role FROM topic_members WHERE topic = $1 AND user_id = $2', [topic, user.id])
  await app.db.query(`INSERT INTO topic_members (topic, user_id, role) VALUES ($1, $2, $3)
    ON CONFLICT (topic, user_id) DO UPDATE SET role = excluded.role`, [topic, user.id, role])
  app.announceMembersChange({ topic, userId: user.id, user: user.username, role, by: by.username, previous: before?.role ?? null })
}

/** Removes a member, committed, then announced on every instance. */
export async function removeMember (app: FastifyInstance, topic: string, user: Someone, by: Someone): Promise<void> {
  await deleteMemberRow(app, topic, user)
  app.announceMembersChange({ topic, userId: user.id, user: user.username, role: null, by: by.username })
}

/** Removes a member's row and tells no one: what an instance that did not hear the change sees. */
export async function deleteMemberRow (app: FastifyInstance, topic: string, user: Someone): Promise<void> {
  await app.db.query('DELETE FROM topic_members WHERE topic = $1 AND user_id = $2', [topic, user.id])
}

/**
 * The client subscribes to a public topic of its own (`probe`) and gets the next frame: when
 * that is the probe's `subscribed`, nothing was queued for the client before it (frames of
 * one socket keep their order).
 */
export async function frameAfterProbe (client: ChatClient, probe: string): Promise<ServerFrame> {
  client.send({ type: 'subscribe', topic: probe })
  return await client.next()
}
