import { createHash } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { addEndpoint, refuse, type Connection } from '../src/endpoint.js'
import type { History } from '../src/message-store.js'
import { CloseCode, defaultTopic, errorFrame, isValidTopic, parseClientFrame, type ClientFrame, type ErrorCode, type ServerFrame } from '../src/protocol.js'
import { TokenBuckets } from '../src/token-bucket.js'
import type { User } from '../src/users.js'
import { showsItsTicket } from '../src/tickets.js'

/** What the chat keeps per connection. */
interface ChatState {
  user: User
  /** The HTTP session that opened the socket, hashed: its logout, on any instance, closes the socket. */
  sessionKey: string
  /** Subscribed topics; true once the connection counts there for presence (joined, not yet left). */
  topics: Map<string, boolean>
  /** The topic of the URL, subscribed right after opening. */
  firstTopic: string | undefined
}

type ChatConnection = Connection<ChatState, ServerFrame>

declare module 'fastify' {
  interface FastifyInstance {
    /** The open /chat connections of this instance. */
    chatConnections: ReadonlySet<ChatConnection>
  }
}

/** Topics one connection may subscribe to at once. */
const maxTopicsPerConnection = 100
/**
 * Frames of any kind per second per connection, and the burst above it: subscribes read the
 * database too. Never tighter than twice the publish limits.
 */
const minFrameRatePerSecond = 50
const minFrameBurst = 100

/**
 * The chat endpoint, /chat: the TreeFrog-style endpoint on Canopy's endpoint layer. Opens
 * only for a logged-in session showing its ticket, subscribes to the URL's topic with its
 * history, and speaks the frames of src/protocol.ts.
 */
export default fp(async function chatEndpoint (fastify) {
  const { config, topicBus, presence } = fastify
  const connectionsBySession = new Map<string, Set<ChatConnection>>()
  const connectionsByUser = new Map<number, number>()
  const frameRatePerSecond = Math.max(minFrameRatePerSecond, 2 * config.publishRatePerSecond)
  const frameBuckets = new TokenBuckets<ChatConnection>(frameRatePerSecond, Math.max(minFrameBurst, 2 * config.publishBurst))
  // Refusals a connection may collect before it counts as sustained abuse (1008).
  const refusalBuckets = new TokenBuckets<ChatConnection>(config.publishRatePerSecond, config.publishBurst)
  fastify.addHook('onClose', async () => { frameBuckets.stop(); refusalBuckets.stop() })

  const subscribe = async (connection: ChatConnection, topic: string, since?: number): Promise<void> => {
    const { topics } = connection.state
    const isNew = !topics.has(topic)
    if (isNew && topics.size >= maxTopicsPerConnection) {
      connection.send(errorFrame('bad_request', `at most ${maxTopicsPerConnection} topics per connection`))
      return
    }
    if (isNew) topics.set(topic, false)
    try {
      await topicBus.subscribe(topic, connection, { since, historyLimit: config.historyLimit }, (history) => subscribed(topic, history))
    } catch (error) {
      if (isNew) topics.delete(topic)
      fastify.log.warn({ err: error, topic }, 'subscribe failed')
      connection.send(errorFrame('unavailable', `could not read the history of ${topic}; subscribe again`))
      return
    }
    // The next frame waits until this history is written out: one large reply at a time.
    await connection.repliesWritten()
    if (isNew && connection.isOpen && topics.has(topic)) {
      topics.set(topic, true)
      presence.join(topic, connection.state.user.name, connection)
    }
  }

  const unsubscribe = (connection: ChatConnection, topic: string): void => {
    const { topics } = connection.state
    const joined = topics.get(topic)
    if (joined === undefined) return
    topics.delete(topic)
    topicBus.unsubscribe(topic, connection)
    // Closed while its history was read: it never joined, so it does not leave.
    if (joined) presence.leave(topic, connection.state.user.name, connection)
  }

  /** A frame refused for its rate; a connection that keeps on regardless is closed. */
  const refuseForRate = (connection: ChatConnection, message: string, ref?: string): void => {
    if (!refusalBuckets.take(connection)) {
      connection.close(CloseCode.policy, 'sustained abuse after rate limiting')
      return
    }
    connection.send(errorFrame('rate_limited', message, ref))
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

  const answerRefusal = (connection: ChatConnection, refusal: { code: ErrorCode, message: string }, ref: string): void => {
    if (refusal.code === 'rate_limited') refuseForRate(connection, refusal.message, ref)
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
      if (origin !== undefined && !isOwnOrigin(request, origin) && !config.allowedOrigins.includes(origin)) {
        return refuse(403, 'forbidden', `Origin ${origin} is not allowed`)
      }
      if ((connectionsByUser.get(user.id) ?? 0) >= config.maxConnectionsPerUser) {
        return refuse(429, 'too_many_connections', `At most ${config.maxConnectionsPerUser} connections per user`)
      }
      return {
        user,
        sessionKey: sessionKey(session.sessionId),
        topics: new Map(),
        firstTopic: topic === undefined || topic === '' ? defaultTopic : typeof topic === 'string' ? topic : undefined
      }
    },

    async opened (connection) {
      const { user, sessionKey, firstTopic } = connection.state
      connectionsByUser.set(user.id, (connectionsByUser.get(user.id) ?? 0) + 1)
      let sessionConnections = connectionsBySession.get(sessionKey)
      if (sessionConnections === undefined) connectionsBySession.set(sessionKey, sessionConnections = new Set())
      sessionConnections.add(connection)
      if (!isValidTopic(firstTopic)) {
        connection.send(errorFrame('bad_topic', 'the topic in the URL is not a topic name; subscribe to one'))
        return
      }
      await subscribe(connection, firstTopic)
    },

    async text (connection, data) {
      const frame = parseClientFrame(data, config.maxMessageChars)
      const ref = 'ref' in frame ? frame.ref : undefined
      if (!frameBuckets.take(connection)) {
        refuseForRate(connection, `over ${frameRatePerSecond} frames per second`, ref)
        return
      }
      if (frame.type === 'error') {
        connection.send(frame)
        return
      }
      await handle(connection, frame)
    },

    closed (connection) {
      const { user, sessionKey, topics } = connection.state
      for (const topic of topics.keys()) unsubscribe(connection, topic)
      const count = (connectionsByUser.get(user.id) ?? 1) - 1
      if (count > 0) connectionsByUser.set(user.id, count)
      else connectionsByUser.delete(user.id)
      const sessionConnections = connectionsBySession.get(sessionKey)
      sessionConnections?.delete(connection)
      if (sessionConnections?.size === 0) connectionsBySession.delete(sessionKey)
      frameBuckets.delete(connection)
      refusalBuckets.delete(connection)
    },

    async drain () {
      while (fastify.publishesInFlight.size > 0) await Promise.allSettled([...fastify.publishesInFlight])
    }
  })

  const closeSession = (key: string): void => {
    for (const connection of connectionsBySession.get(key) ?? []) connection.close(CloseCode.loggedOut, 'logged out')
  }
  fastify.onLogout((sessionId) => {
    const key = sessionKey(sessionId)
    closeSession(key)
    topicBus.announce({ kind: 'logout', sessionKey: key })
  })
  topicBus.onEvent((event) => { if (event.kind === 'logout') closeSession(event.sessionKey) })

  fastify.decorate('chatConnections', endpoint.connections)
}, { name: 'chat-endpoint', fastify: '5.x', dependencies: ['config', 'websocket', 'session', 'accounts', 'topic-bus', 'presence', 'publish'] })

/** The first frame of a subscription, and every later one: the topic's history. */
function subscribed (topic: string, history: History): ServerFrame {
  return history.truncated
    ? { type: 'subscribed', topic, history: history.messages, truncated: true }
    : { type: 'subscribed', topic, history: history.messages }
}

/** Whether `origin` is this server's own, as the request reached it (default ports ignored). */
function isOwnOrigin (request: FastifyRequest, origin: string): boolean {
  // request.protocol is undefined for a request without a socket (injectWS).
  const protocol = (request.protocol as string | undefined) ?? 'http'
  try {
    return new URL(origin).origin === new URL(`${protocol}://${request.host}`).origin
  } catch {
    return false
  }
}

/** A session id as it may travel between instances: not the secret itself. */
function sessionKey (sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('base64url')
}
