import type { FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { Access, type AccessDecision, type MembersChange, type TopicAccess, type TopicAction } from '../src/access.js'
import { HttpError } from '../src/errors.js'
import { isValidTopic, topicPattern } from '../src/protocol.js'

/** This plugin's name, for the `dependencies` of every plugin that reads or writes a topic. */
export const accessPlugin = 'access'

/**
 * What a route of a topic (a path with `:topic`) does there, declared in its config:
 * `config: { topicAccess: 'read' }`. The route is refused before its handler unless the
 * access module allows it. `publish path`: the route publishes through src/publisher.ts,
 * which asks the access module itself (one check, not two).
 */
export type RouteTopicAccess = TopicAction | 'publish path'

declare module 'fastify' {
  interface FastifyInstance {
    /** Who may do what in a topic (src/access.ts): every route and frame that reads or writes a topic asks it. */
    access: Access
    /**
     * A membership change committed here: applied here at once, and told to every other
     * instance, which applies it as it hears it.
     */
    announceMembersChange(change: MembersChange): void
    /**
     * A membership change committed here by a statement that told the other instances itself
     * (its NOTIFY, sent at commit, so they hear it in commit order with the messages): applied
     * here only.
     */
    applyMembersChange(change: MembersChange): void
  }
  interface FastifyContextConfig {
    /** Required on every route whose path has `:topic` (plugins/access.ts). */
    topicAccess?: RouteTopicAccess
  }
  interface FastifyRequest {
    /** What the access module knows of the route's topic, once it allowed the request (routes with `config.topicAccess`). */
    topicAccess: TopicAccess | undefined
  }
}

/** A path of a topic's route: `/api/topics/:topic`, and everything under it. */
const topicRoute = /\/:topic(\/|$)/

/** The HTTP answer to a refusal: 403 `forbidden`, or 400 `bad_topic` for a `dm.` name that is no topic. */
export function refusalOf (decision: Extract<AccessDecision, { allowed: false }>, topic: string): HttpError {
  if (decision.code === 'bad_topic') return new HttpError(400, 'bad_topic', `There is no direct-message topic ${topic}: start one with POST /api/dm`)
  const known = decision.topic
  const why = known === undefined || known.visibility === 'public'
    ? `Nobody manages the members of ${topic}: it is a public topic`
    : known.role === undefined
      ? `You are not a member of the private topic ${topic}`
      : known.kind === 'dm' ? 'The members of a direct-message topic are fixed' : `Only an owner of ${topic} may do that`
  return new HttpError(403, 'forbidden', why)
}

export default fp(async function access (fastify) {
  const { topicBus } = fastify
  const decider = new Access({ db: fastify.db })
  topicBus.onEvent((event) => {
    if (event.kind !== 'members') return
    const { topic, userId, user, role, by, previous } = event
    decider.apply(previous === undefined ? { topic, userId, user, role, by } : { topic, userId, user, role, by, previous })
  })
  // Defence in depth: nothing of a private topic is delivered to a subscriber who is not a
  // member, whatever let the subscription through; topics with subscribers here stay known.
  topicBus.filterDeliveries({
    visibility: (topic) => decider.knownVisibility(topic),
    mayReceive: (userId, topic) => decider.mayReceive(userId, topic),
    learn: async (topic) => {
      if (await decider.refresh(topic) !== undefined) return 'private'
      return decider.knownVisibility(topic) === 'public' ? 'public' : undefined
    },
    served: (topic) => { decider.pin(topic) },
    unserved: (topic) => { decider.unpin(topic) }
  })
  fastify.decorate('access', decider)
  fastify.decorate('announceMembersChange', (change: MembersChange) => {
    decider.apply(change)
    topicBus.tellOtherInstances({ kind: 'members', ...change })
  })
  fastify.decorate('applyMembersChange', (change: MembersChange) => { decider.apply(change) })

  /** The check of a route that declared `topicAccess`: a valid name, a user, and the access module's yes. */
  const checkFor = (action: TopicAction) => async (request: FastifyRequest): Promise<void> => {
    const { topic } = request.params as { topic?: unknown }
    if (request.user === undefined) throw new HttpError(401, 'unauthorized', 'Log in first')
    if (!isValidTopic(topic)) throw new HttpError(400, 'bad_topic', `A topic name matches ${String(topicPattern)}`)
    let decision: AccessDecision
    try {
      decision = await decider.decide(request.user.id, topic, action)
    } catch (error) {
      request.log.warn({ err: error }, 'access: could not read the topic')
      throw new HttpError(503, 'unavailable', 'Service unavailable; try again')
    }
    if (!decision.allowed) throw refusalOf(decision, topic)
    request.topicAccess = decision.topic
  }
  const checks = { read: checkFor('read'), publish: checkFor('publish'), manage: checkFor('manage') }

  fastify.decorateRequest('topicAccess', undefined)
  // Every route of a topic, registered after this plugin, declares what it does there and is
  // checked before its handler (after its own preHandlers, such as requireUser): a route that
  // declares nothing does not start.
  fastify.addHook('onRoute', (route: RouteOptions) => {
    if (!topicRoute.test(route.url)) return
    const declared = route.config?.topicAccess
    if (declared === undefined) {
      throw new Error(`${String(route.method)} ${route.url}: a route of a topic declares config.topicAccess (plugins/access.ts)`)
    }
    if (declared === 'publish path') return
    const own = route.preHandler === undefined ? [] : [route.preHandler].flat()
    route.preHandler = [...own, checks[declared]]
  })
}, { name: accessPlugin, fastify: '5.x', dependencies: ['database', 'topic-bus'] })
