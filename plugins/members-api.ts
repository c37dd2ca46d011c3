import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { directMessagePrefix, type MembersChange, type TopicAccess } from '../src/access.js'
import { HttpError } from '../src/errors.js'
import {
  CreatedTopicBody, DirectMessageBody, DirectMessageTopicBody, isValidTopic, maxDirectMessageOthers, MemberBody, MemberParams,
  MembersBody, NewTopicBody, TopicParams, topicPattern
} from '../src/protocol.js'
import { createTopic, directMessageName, findUsers, listMembers, removeMember, setMember, startDirectMessage, topicExists, type MembersChangeOutcome } from '../src/topic-members.js'
import type { User } from '../src/users.js'
import { accessPlugin, refusalOf } from './access.js'

/** What the access module allowed for the route's topic (plugins/access.ts sets it before the handler). */
function allowedOf (request: FastifyRequest): TopicAccess {
  if (request.topicAccess === undefined) throw new Error(`${request.url}: no topic access was decided`)
  return request.topicAccess
}

/** The answer to a membership change the table refused (src/topic-members.ts). */
function refusalOfChange (outcome: Extract<MembersChangeOutcome, { ok: false }>, topic: string, name: string): HttpError {
  switch (outcome.code) {
    case 'not_private': return notPrivate(topic)
    case 'forbidden': return new HttpError(403, 'forbidden', `Only an owner of ${topic} may do that, and nobody changes the members of a direct-message topic`)
    case 'unknown_user': return new HttpError(404, 'unknown_user', `Nobody is called ${name}`)
    case 'not_found': return new HttpError(404, 'not_found', `${name} is not a member of ${topic}`)
    case 'last_owner': return new HttpError(409, 'last_owner', `You are the only owner of ${topic}: make another member an owner first`)
  }
}

const notPrivate = (topic: string): HttpError => new HttpError(400, 'bad_request', `${topic} is a public topic: it has no members`)

/**
 * Private topics and direct messages over HTTP (docs/protocol.md, "Private topics and direct
 * messages"): creating a topic on purpose, its member list, adding, changing and removing
 * members, and starting a direct-message topic. Who may do it is asked of the access module
 * (src/access.ts); the statements are in src/topic-members.ts, and each change reaches the
 * other instances by its own NOTIFY, so it is applied here only.
 */
export default fp(async function membersApi (fastify) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { db, access, topicBus: bus } = fastify
  const creations = fastify.publisher.topicCreations
  const { topicCreatesPerHour } = fastify.config

  /** TOPIC_CREATE_RATE: a new private topic, public topic or direct-message topic counts as one. */
  const countCreation = async (user: User, topic: string): Promise<void> => {
    const counted = await creations.countCreation(user.id)
    if (counted === 'unavailable') throw new HttpError(503, 'unavailable', 'Service unavailable; try again')
    if (counted !== 'ok') {
      throw new HttpError(429, 'rate_limited', `over ${topicCreatesPerHour} new topics per hour; ${topic} was not created; try again in ${counted.retryAfterMs} ms`, counted.retryAfterMs)
    }
  }

  app.post('/api/topics', {
    schema: { body: NewTopicBody, response: { 201: CreatedTopicBody } },
    preHandler: fastify.requireUser
  }, async (request, reply) => {
    const user = request.user as User
    const { name, visibility } = request.body
    if (!isValidTopic(name)) throw new HttpError(400, 'bad_topic', `A topic name matches ${String(topicPattern)}`)
    if (name.startsWith(directMessagePrefix)) throw new HttpError(400, 'bad_topic', `Names that begin with ${directMessagePrefix} are for direct messages: start one with POST /api/dm`)
    const exists = new HttpError(409, 'topic_exists', `${name} is a topic already`)
    if (await topicExists(db, name)) throw exists
    await countCreation(user, name)
    if (!await createTopic(db, { name, visibility, userId: user.id })) throw exists
    creations.remember(name)
    if (visibility === 'private') access.created(name, undefined, [[user.id, 'owner']])
    return await reply.code(201).send({ topic: { name, visibility, role: 'owner' as const } })
  })

  app.get('/api/topics/:topic/members', {
    schema: { params: TopicParams, response: { 200: MembersBody } },
    preHandler: fastify.requireUser,
    config: { topicAccess: 'read' }
  }, async (request) => {
    if (allowedOf(request).visibility === 'public') return { visibility: 'public' as const, members: [] }
    return { visibility: 'private' as const, members: await listMembers(db, request.params.topic) }
  })

  app.put('/api/topics/:topic/members/:name', {
    schema: { params: MemberParams, body: MemberBody },
    preHandler: fastify.requireUser,
    config: { topicAccess: 'read' }
  }, async (request, reply) => {
    const user = request.user as User
    const { topic, name } = request.params
    if (allowedOf(request).visibility === 'public') throw notPrivate(topic)
    const decision = await access.decide(user.id, topic, 'manage')
    if (!decision.allowed) throw refusalOf(decision, topic)
    const outcome = await setMember(db, { topic, caller: user, name, role: request.body.role, notify: bus.transport })
    if (!outcome.ok) throw refusalOfChange(outcome, topic, name)
    if (outcome.change !== undefined) fastify.applyMembersChange(outcome.change)
    return await reply.code(204).send()
  })

  app.delete('/api/topics/:topic/members/:name', {
    schema: { params: MemberParams },
    preHandler: fastify.requireUser,
    config: { topicAccess: 'read' }
  }, async (request, reply) => {
    const user = request.user as User
    const { topic, name } = request.params
    const allowed = allowedOf(request)
    if (allowed.visibility === 'public') throw notPrivate(topic)
    // Any member may leave; removing someone else is managing (and a direct-message topic's members are fixed).
    const leaving = name.toLowerCase() === user.name.toLowerCase()
    if (!leaving || allowed.kind === 'dm') {
      const decision = await access.decide(user.id, topic, 'manage')
      if (!decision.allowed) throw refusalOf(decision, topic)
    }
    const outcome = await removeMember(db, { topic, caller: user, name, notify: bus.transport })
    if (!outcome.ok) throw refusalOfChange(outcome, topic, name)
    if (outcome.change !== undefined) fastify.applyMembersChange(outcome.change)
    return await reply.code(204).send()
  })

  app.post('/api/dm', {
    schema: { body: DirectMessageBody, response: { 200: DirectMessageTopicBody } },
    preHandler: fastify.requireUser
  }, async (request) => {
    const user = request.user as User
    const own = user.name.toLowerCase()
    const names = [...new Set(request.body.with.map((name) => name.toLowerCase()))].filter((name) => name !== own)
    if (names.length === 0) throw new HttpError(400, 'bad_request', 'Name at least one other user')
    if (names.length > maxDirectMessageOthers) throw new HttpError(400, 'bad_request', `A direct-message topic has at most ${maxDirectMessageOthers} other members`)
    const others = await findUsers(db, names)
    if (others.length < names.length) {
      const found = new Set(others.map((other) => other.name.toLowerCase()))
      throw new HttpError(404, 'unknown_user', `Nobody is called ${names.filter((name) => !found.has(name)).join(', ')}`)
    }
    const memberIds = [user.id, ...others.map((other) => other.id)]
    const topic = directMessageName(memberIds)
    const members = [user.name, ...others.map((other) => other.name)].sort()
    const added: MembersChange[] = others.map((other) => ({ topic, userId: other.id, user: other.name, role: 'member', by: user.name, previous: null }))
    if (!await topicExists(db, topic)) await countCreation(user, topic)
    const started = await startDirectMessage(db, { topic, callerId: user.id, memberIds, added, notify: bus.transport })
    if (started === 'not_dm') throw new HttpError(409, 'topic_exists', `${topic} is a public topic from before names beginning with ${directMessagePrefix} were kept for direct messages`)
    if (started === 'created') {
      creations.remember(topic)
      access.created(topic, 'dm', memberIds.map((id) => [id, 'member']))
      for (const change of added) fastify.applyMembersChange(change)
    }
    return { topic: { name: topic, visibility: 'private' as const, kind: 'dm' as const, members } }
  })
}, { name: 'members-api', fastify: '5.x', dependencies: ['config', 'database', 'session', 'topic-bus', accessPlugin, 'publish'] })
