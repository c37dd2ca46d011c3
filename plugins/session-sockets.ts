import fp from 'fastify-plugin'
import { stillAdmitted } from '../src/bots.js'
import { sessionKey, SessionSockets } from '../src/session-sockets.js'
import { sessionPlugin } from './session.js'

/** This plugin's name, for the `dependencies` of the endpoints that register their sockets. */
export const sessionSocketsPlugin = 'session-sockets'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The open sockets of this instance by HTTP session, and programs' by user: an endpoint
     * adds each socket it opens, and deletes it when closed.
     */
    sessionSockets: SessionSockets
    /**
     * Closes the sockets of sessions that ended without a word reaching this instance (they
     * expired, or a logout's event was lost), and programs' sockets whose key was revoked or
     * whose user was disabled meanwhile; runs every sessionCheckMs.
     */
    closeEndedSessions(): Promise<void>
  }
}

/**
 * Every instance checks this often that the sessions of its sockets are still valid: the
 * logout event is the fast path, this is the one that cannot be lost.
 */
const sessionCheckMs = 15_000

/**
 * A session that ends closes its sockets, on every instance: here at once (onSessionEnded),
 * elsewhere through a `logout` event on the topic bus, and in any case within sessionCheckMs.
 * So do programs' sockets whose key is revoked or whose user is disabled (onProgramsEnded, a
 * `revoked` event).
 */
export default fp(async function sessionSocketsOwner (fastify) {
  const { topicBus } = fastify
  const sockets = new SessionSockets()
  fastify.onSessionEnded((sessionId) => {
    const key = sessionKey(sessionId)
    sockets.closeSession(key)
    topicBus.tellOtherInstances({ kind: 'logout', sessionKey: key })
  })
  fastify.onProgramsEnded((userIds) => {
    sockets.closePrograms(userIds)
    topicBus.tellOtherInstances({ kind: 'revoked', userIds })
  })
  topicBus.onEvent((event) => {
    if (event.kind === 'logout') sockets.closeSession(event.sessionKey)
    else if (event.kind === 'revoked') sockets.closePrograms(event.userIds)
  })

  const closeEndedSessions = async (): Promise<void> => {
    try {
      await sockets.closeEnded(async (sessionIds) => await fastify.sessionStore.stillValid(sessionIds))
      await sockets.closeRevoked(async (userIds) => await stillAdmitted(fastify.db, userIds))
    } catch (error) {
      fastify.log.warn({ err: error }, 'checking the sessions of open sockets failed')
    }
  }
  const sessionCheckTimer = setInterval(() => { void closeEndedSessions() }, sessionCheckMs).unref()
  fastify.addHook('onClose', async () => { clearInterval(sessionCheckTimer) })
  fastify.decorate('closeEndedSessions', closeEndedSessions)
  fastify.decorate('sessionSockets', sockets)
}, { name: sessionSocketsPlugin, fastify: '5.x', dependencies: [sessionPlugin, 'topic-bus'] })
