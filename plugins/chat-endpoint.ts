import { createHash } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { addEndpoint, refuse, type Connection } from '../src/endpoint.js'
import { LogSampler } from '../src/log-sampler.js'
import type { History } from '../src/message-store.js'
import { CloseCode, defaultTopic, errorFrame, isValidTopic, maxTopicsPerConnection, parseClientFrame, type ClientFrame, type ErrorCode, type ErrorFrame, type ServerFrame } from '../src/protocol.js'
import { RefusalPolicy } from '../src/refusal-policy.js'
import { TokenBuckets } from '../src/token-bucket.js'
import type { User } from '../src/users.js'
import { showsItsTicket } from '../src/tickets.js'
import { isAllowedOrigin } from '../src/origin-policy.js'

/** What the chat keeps per connection. */
interface ChatState {
  user: User
  /** The HTTP session that opened the socket: when it ends, by any path, the socket is closed. */
  sessionId: string
  /** Subscribed topics (the connection counts there for presence). */
  topics: Set<string>
  /** The topic of the URL, subscribed right after opening. */
  firstTopic: string | undefined
}

type ChatConnection = Connection<ChatState, ServerFrame>

declare module 'fastify' {
  interface FastifyInstance {
    /** The open /chat connections of this instance. */
    chatConnections: ReadonlySet<ChatConnection>
    /**
     * Closes the sockets of sessions that ended without a word reaching this instance (they
     * expired, or a logout's announcement was lost); runs every sessionCheckMs.
     */
    closeEndedSessions(): Promise<void>
  }
}

/**
 * Every instance checks this often that the sessions of its sockets are still valid: the
 * announcement of a logout is the fast path, this is the one that cannot be lost.
 */
const sessionCheckMs = 15_000
/**
 * Frames of any kind per second per connection, and the burst above it: subscribes read the
 * database too. Never tighter than twice the publish limits.
 */
const minFrameRatePerSecond = 50
const minFrameBurst = 100
/**
 * Publishes a client may have sent and not yet had acked (waits to send again included) and
 * still be polite after `rate_limited` (docs/protocol.md); public/connection.js keeps to it.
 * Frames without a ref (subscribes) in flight: at most one per topic of the connection.
 */
const maxPublishesInFlight = 32
/** A client's timer measures the wait from its own clock's last tick: a few ms early is in time. */
const pauseToleranceMs = 10
/** At most one log line of rate-limit refusals this often per instance, with the count since the last one. */
const refusalLogEveryMs = 1000

/**
 * The chat endpoint, /chat: the TreeFrog-style endpoint on Canopy's endpoint layer. Opens
 * only for a logged-in session showing its ticket, subscribes to the URL's topic with its
 * history, and speaks the frames of src/protocol.ts.
 */
export default fp(async function chatEndpoint (fastify) {
  const { config, topicBus, presence, metrics } = fastify
  /** By session key (the session id hashed, as it travels between instances). */
  const connectionsBySession = new Map<string, { sessionId: string, connections: Set<ChatConnection> }>()
  const connectionsByUser = new Map<number, number>()
  const frameRatePerSecond = Math.max(minFrameRatePerSecond, 2 * config.publishRatePerSecond)
  const frameBuckets = new TokenBuckets<ChatConnection>(frameRatePerSecond, Math.max(minFrameBurst, 2 * config.publishBurst))
  const refusals = new RefusalPolicy<ChatConnection>({
    inFlight: { publish: maxPublishesInFlight, other: maxTopicsPerConnection },
    toleranceMs: pauseToleranceMs
  })
  const refusalLog = new LogSampler({ everyMs: refusalLogEveryMs })
  fastify.addHook('onClose', async () => { frameBuckets.stop() })

  const subscribe = async (connection: ChatConnection, topic: string, since?: number): Promise<void> => {
    const { topics } = connection.state
    const isNew = !topics.has(topic)
    if (isNew && topics.size >= maxTopicsPerConnection) {
      connection.send(errorFrame('bad_request', `at most ${maxTopicsPerConnection} topics per connection`))
      return
    }
    const readWaitMs = fastify.historyReads.take(connection.state.user.id)
    if (readWaitMs > 0) {
      refuseForRate(connection, `over the history reads a user may make per second; subscribe again in ${readWaitMs} ms`, readWaitMs, undefined, topic)
      return
    }
    // A subscribe may bring a topic into being: TOPIC_CREATE_RATE (free when the topic is known to exist).
    const creation = await fastify.topicCreations.admit(connection.state.user.id, topic, { make: true })
    if (creation === 'unavailable') {
      connection.send(errorFrame('unavailable', `could not subscribe to ${topic}; subscribe again`))
      return
    }
    if (creation !== 'ok') {
      refuseForRate(connection, `over ${config.topicCreatesPerHour} new topics per hour; ${topic} is not one yet; subscribe again in ${creation.retryAfterMs} ms`, creation.retryAfterMs, undefined, topic)
      return
    }
    // The user counts as present from now, and the `subscribed` frame waits until the
    // database says so: whoever subscribes after it arrives sees this user present.
    if (isNew) topics.add(topic)
    const entered = isNew ? presence.join(topic, connection.state.user, connection) : undefined
    try {
      let present: string[] = []
      const alongside = Promise.all([presence.presentIn(topic).then((names) => { present = names }), entered])
      await topicBus.subscribe(topic, connection, { since, historyLimit: config.historyLimit, alongside },
        (history) => subscribed(topic, history, withUser(present, connection.state.user.name)))
    } catch (error) {
      // A later subscribe to the topic (after an unsubscribe) may have taken its place: it stays.
      if (isNew && !topicBus.has(topic, connection) && topics.delete(topic)) presence.leave(topic, connection.state.user)
      fastify.log.warn({ err: error, topic }, 'subscribe failed')
      connection.send(errorFrame('unavailable', `could not read the history of ${topic}; subscribe again`))
      return
    }
    // The next frame waits until this history is written out: one large reply at a time.
    await connection.repliesWritten()
  }

  const unsubscribe = (connection: ChatConnection, topic: string): void => {
    const { topics } = connection.state
    if (!topics.delete(topic)) return
    topicBus.unsubscribe(topic, connection)
    presence.leave(topic, connection.state.user)
  }

  /**
   * A frame refused for its rate, with the wait before one would be accepted. A client that
   * pauses for the hint it was given is never closed; one that keeps sending without pausing
   * is closed with 1008 (src/refusal-policy.ts says how it is told apart).
   */
  const refuseForRate = (connection: ChatConnection, message: string, retryAfterMs: number, ref?: string, topic?: string): void => {
    if (refusals.refuse(connection, ref === undefined ? 'other' : 'publish', retryAfterMs) === 'not_pausing') {
      connection.close(CloseCode.policy, 'kept sending without pausing after rate limiting')
      return
    }
    const unlogged = refusalLog.take()
    if (unlogged !== undefined) {
      fastify.log.info({ reqId: connection.reqId, user: connection.state.user.name, retryAfterMs, unlogged }, 'rate limited')
    }
    connection.send({ ...errorFrame('rate_limited', message, ref), ...(topic === undefined ? {} : { topic }), retryAfterMs })
  }

  const handle = async (connection: ChatConnection, frame: ClientFrame): Promise<void> => {
    switch (frame.type) {
      case 'subscribe':
        await subscribe(connection, frame.topic, frame.since)
        return
      case 'unsubscribe':
        unsubscribe(connection, frame.topic)
        connection.send({ type: 'unsubscribed', topic: frame.topic })
        return
      case 'publish': {
        // Waits for the message's place in the queue, not for its commit: the connection's
        // next frames go on meanwhile (and share its transaction), in order.
        const { ref } = frame
        const queued = await fastify.queuePublish(connection.state.user, frame.topic, frame.text, ref, (message) => {
          connection.send({ type: 'ack', ref, id: message.id, at: message.at })
        })
        if (!('outcome' in queued)) {
          answerRefusal(connection, queued, ref)
          return
        }
        void queued.outcome.then((outcome) => { if (!outcome.ok) answerRefusal(connection, outcome, ref) })
      }
    }
  }

  const answerRefusal = (connection: ChatConnection, refusal: { code: ErrorCode, message: string, retryAfterMs?: number }, ref: string): void => {
    if (refusal.code === 'rate_limited') refuseForRate(connection, refusal.message, refusal.retryAfterMs ?? 1000, ref)
    else connection.send(errorFrame(refusal.code, refusal.message, ref))
  }

  const endpoint = addEndpoint<ChatState, ServerFrame>(fastify, {
    name: 'chat',
    path: '/chat',
    keepaliveIntervalMs: config.keepaliveIntervalMs,
    maxBufferedBytes: config.sendBufferLimitBytes,

    async open (request: FastifyRequest) {
      const { user, session } = request
      if (user === undefined) return refuse(401, 'unauthorized', 'Log in first')
      const { topic } = request.query as { topic?: unknown }
      if (!showsItsTicket(request)) {
        return refuse(403, 'forbidden', 'The ticket is missing or not this session\'s (see GET /api/me)')
      }
      const origin = request.headers.origin
      if (origin !== undefined && !isAllowedOrigin(request, origin, config.allowedOrigins)) {
        return refuse(403, 'forbidden', `Origin ${origin} is not allowed`)
      }
      if ((connectionsByUser.get(user.id) ?? 0) >= config.maxConnectionsPerUser) {
        return refuse(429, 'too_many_connections', `At most ${config.maxConnectionsPerUser} connections per user`)
      }
      return {
        user,
        sessionId: session.sessionId,
        topics: new Set(),
        firstTopic: topic === undefined || topic === '' ? defaultTopic : typeof topic === 'string' ? topic : undefined
      }
    },

    async opened (connection) {
      const { user, sessionId, firstTopic } = connection.state
      connectionsByUser.set(user.id, (connectionsByUser.get(user.id) ?? 0) + 1)
      const key = sessionKey(sessionId)
      let ofSession = connectionsBySession.get(key)
      if (ofSession === undefined) connectionsBySession.set(key, ofSession = { sessionId, connections: new Set() })
      ofSession.connections.add(connection)
      fastify.log.info({ reqId: connection.reqId, user: user.name, topic: firstTopic }, 'socket opened')
      if (!isValidTopic(firstTopic)) {
        connection.send(errorFrame('bad_topic', 'the topic in the URL is not a topic name; subscribe to one'))
        return
      }
      await subscribe(connection, firstTopic)
    },

    async text (connection, data) {
      const frame = parseClientFrame(data, config.maxMessageChars)
      const ref = 'ref' in frame ? frame.ref : undefined
      const frameWaitMs = frameBuckets.take(connection)
      if (frameWaitMs > 0) {
        if (isPublishAttempt(frame, data)) metrics.published('rate_limited')
        refuseForRate(connection, `over ${frameRatePerSecond} frames per second; send again in ${frameWaitMs} ms`, frameWaitMs, ref)
        return
      }
      if (frame.type === 'error') {
        if (isPublishAttempt(frame, data)) metrics.published(frame.code)
        connection.send(frame)
        return
      }
      await handle(connection, frame)
    },

    closed (connection, code, reason) {
      const { user, sessionId, topics } = connection.state
      fastify.log.info({ reqId: connection.reqId, user: user.name, code, reason, topics: [...topics] }, 'socket closed')
      for (const topic of [...topics]) unsubscribe(connection, topic)
      const count = (connectionsByUser.get(user.id) ?? 1) - 1
      if (count > 0) connectionsByUser.set(user.id, count)
      else connectionsByUser.delete(user.id)
      const key = sessionKey(sessionId)
      const ofSession = connectionsBySession.get(key)
      ofSession?.connections.delete(connection)
      if (ofSession?.connections.size === 0) connectionsBySession.delete(key)
      frameBuckets.delete(connection)
      refusals.forget(connection)
    },

    refused (statusCode) {
      metrics.upgradeRefused(statusCode)
    },

    async drain () {
      while (fastify.publishesInFlight.size > 0) await Promise.allSettled([...fastify.publishesInFlight])
    }
  })

  const closeSession = (key: string): void => {
    for (const connection of connectionsBySession.get(key)?.connections ?? []) connection.close(CloseCode.loggedOut, 'logged out')
  }
  fastify.onSessionEnded((sessionId) => {
    const key = sessionKey(sessionId)
    closeSession(key)
    topicBus.announce({ kind: 'logout', sessionKey: key })
  })
  topicBus.onEvent((event) => { if (event.kind === 'logout') closeSession(event.sessionKey) })

  const closeEndedSessions = async (): Promise<void> => {
    const open = [...connectionsBySession]
    if (open.length === 0) return
    let valid: Set<string>
    try {
      valid = await fastify.sessionStore.stillValid(open.map(([, { sessionId }]) => sessionId))
    } catch (error) {
      fastify.log.warn({ err: error }, 'checking the sessions of open sockets failed')
      return
    }
    for (const [key, { sessionId }] of open) if (!valid.has(sessionId)) closeSession(key)
  }
  const sessionCheckTimer = setInterval(() => { void closeEndedSessions() }, sessionCheckMs).unref()
  fastify.addHook('onClose', async () => { clearInterval(sessionCheckTimer) })
  fastify.decorate('closeEndedSessions', closeEndedSessions)

  fastify.decorate('chatConnections', endpoint.connections)
  metrics.readFrom({
    connections: () => endpoint.connections.size,
    subscriptions: () => {
      let subscriptions = 0
      for (const connection of endpoint.connections) subscriptions += connection.state.topics.size
      return subscriptions
    },
    slowConsumerCloses: () => endpoint.slowConsumerCloses
  })
}, { name: 'chat-endpoint', fastify: '5.x', dependencies: ['config', 'websocket', 'session', 'accounts', 'metrics', 'topic-bus', 'presence', 'publish', 'history-reads'] })

/**
 * Whether a frame refused before it is handled was a publish attempt, for the metrics: a
 * publish, or a frame that may have meant to be one (it cannot be read as a subscribe or an
 * unsubscribe). Publishes that get further are counted by the publish path.
 */
function isPublishAttempt (frame: ClientFrame | ErrorFrame, data: string): boolean {
  if (frame.type !== 'error') return frame.type === 'publish'
  // Only these refuse a subscribe or an unsubscribe too: read the type again (a refusal is rare).
  if (frame.code !== 'bad_request' && frame.code !== 'bad_topic') return true
  try {
    const { type } = JSON.parse(data) as { type?: unknown }
    return type !== 'subscribe' && type !== 'unsubscribe'
  } catch {
    return true
  }
}

/** The first frame of a subscription, and every later one: the topic's history and who is there. */
function subscribed (topic: string, history: History, present: string[]): ServerFrame {
  return history.truncated
    ? { type: 'subscribed', topic, history: history.messages, present, truncated: true }
    : { type: 'subscribed', topic, history: history.messages, present }
}

/** The names present, with the subscriber's own (it may not be counted yet), each once, sorted. */
function withUser (present: string[], name: string): string[] {
  return present.includes(name) ? present : [...present, name].sort()
}

/** A session id as it may travel between instances: not the secret itself. */
function sessionKey (sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('base64url')
}
