import fp from 'fastify-plugin'
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { PostgresSessionStore, sessionCookieName } from '../src/session-store.js'
import { HttpError } from '../src/errors.js'
import { repeatUntilClose } from '../src/periodic.js'
import type { User } from '../src/users.js'

declare module 'fastify' {
  interface Session {
    userId?: number
    userName?: string
    /** The secret a page must show to open /chat: proves the socket comes from this session. */
    wsTicket?: string
  }
  interface FastifyInstance {
    sessionStore: PostgresSessionStore
    /** preHandler: 401 unless the request's session is logged in. */
    requireUser(request: FastifyRequest): Promise<void>
    /** Tells the browser to drop the session cookie (with the attributes it was set with, which a `__Host-` cookie needs). */
    clearSessionCookie(reply: FastifyReply): void
    /**
     * Called with the session id of every session that ends here: a logout (of one session or
     * of all the user's), a login that replaces the session it was sent with, or one past the
     * user's maxSessionsPerUser that ends the oldest. plugins/session-sockets.ts closes its
     * open sockets.
     */
    onSessionEnded(listener: (sessionId: string) => void): void
    /** Tells every onSessionEnded listener that this session ended (plugins/accounts.ts does). */
    sessionEnded(sessionId: string): void
  }
  interface FastifyRequest {
    /** The logged-in user of the session, if any. */
    user: User | undefined
  }
}

/** This plugin's name, for the `dependencies` of the plugins that use its decorators. */
export const sessionPlugin = 'session'

const sessionMaxAgeMs = 7 * 24 * 3600 * 1000
const expiredSweepMs = 10 * 60 * 1000

export default fp(async function session (fastify) {
  const store = new PostgresSessionStore(fastify.db, sessionMaxAgeMs)
  const cookieName = sessionCookieName(fastify.config)
  // Path=/ and no Domain, which the production name's `__Host-` prefix requires.
  const cookie = { path: '/', httpOnly: true, sameSite: 'lax', secure: fastify.config.production } as const
  await fastify.register(fastifyCookie)
  await fastify.register(fastifySession, {
    secret: fastify.config.sessionSecret,
    cookieName,
    store,
    saveUninitialized: false,
    // No write to the store on every request: a session lasts sessionMaxAgeMs from login.
    rolling: false,
    cookie: { ...cookie, maxAge: sessionMaxAgeMs }
  })
  fastify.decorate('sessionStore', store)
  fastify.decorate('clearSessionCookie', (reply: FastifyReply) => { void reply.clearCookie(cookieName, cookie) })
  const endedListeners: Array<(sessionId: string) => void> = []
  fastify.decorate('onSessionEnded', (listener: (sessionId: string) => void) => { endedListeners.push(listener) })
  fastify.decorate('sessionEnded', (sessionId: string) => { for (const listener of endedListeners) listener(sessionId) })
  fastify.decorateRequest('user', undefined)
  // Right after @fastify/session has loaded the session, so every later hook sees the user.
  fastify.addHook('onRequest', async (request) => {
    const { userId, userName } = request.session
    if (userId !== undefined && userName !== undefined) request.user = { id: userId, name: userName }
  })
  fastify.decorate('requireUser', async (request: FastifyRequest) => {
    if (request.user === undefined) throw new HttpError(401, 'unauthorized', 'Log in first')
  })

  repeatUntilClose(fastify, { everyMs: expiredSweepMs, failure: 'deleting expired sessions failed', atReady: true }, async () => {
    const count = await store.deleteExpired()
    if (count > 0) fastify.log.info({ count }, 'expired sessions deleted')
  })
}, { name: sessionPlugin, fastify: '5.x', dependencies: ['config', 'database'] })
