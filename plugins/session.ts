import fp from 'fastify-plugin'
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { PostgresSessionStore, sessionCookieName } from '../src/session-store.js'
import { HttpError } from '../src/errors.js'
import { repeatUntilClose } from '../src/periodic.js'
import type { User } from '../src/users.js'
import { ProgramAuth, programCredentialOf, type ProgramAdmission, type ProgramAuthentication } from '../src/program-auth.js'
import { TokenVerifier } from '../src/tokens.js'

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
    /**
     * Called with the ids of users whose programs' sockets (opened with a key or a token) must
     * close: a bot's key revoked, a user or a bot's owner disabled. plugins/session-sockets.ts
     * closes them, here and on every instance.
     */
    onProgramsEnded(listener: (userIds: number[]) => void): void
    /** Tells every onProgramsEnded listener (plugins/bots-api.ts and plugins/admin-api.ts do). */
    programsEnded(userIds: number[]): void
    /** The user a signed token admits, for an `auth` frame that replaces a socket's token (src/program-auth.ts). */
    admitToken(token: string): Promise<ProgramAdmission>
  }
  interface FastifyRequest {
    /** The user of the request: the session's, or the one a program's key or token admits. */
    user: User | undefined
    /** Set when a program's key or token admitted the request's user (no session then). */
    programAuthentication: ProgramAuthentication | undefined
    /**
     * Why the request's key or token admits no one (401), or why it could not be checked
     * (503): refused at once, but an upgrade, which its endpoint refuses (src/chat-handshake.ts).
     */
    credentialRefusal: HttpError | undefined
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
  // A program's request (a key or a token, src/program-auth.ts) is no session's: its cookie is
  // not read, so no session of it is loaded or ended, and it is sent no cookie (this onSend
  // runs before @fastify/session's, which then has no session to save).
  fastify.addHook('onRequest', async (request) => {
    if (programCredentialOf(request) !== undefined) request.cookies = {}
  })
  fastify.addHook('onSend', async (request) => {
    if (programCredentialOf(request) !== undefined) (request as { session: unknown }).session = null
  })
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
  const programsEndedListeners: Array<(userIds: number[]) => void> = []
  fastify.decorate('onProgramsEnded', (listener: (userIds: number[]) => void) => { programsEndedListeners.push(listener) })
  fastify.decorate('programsEnded', (userIds: number[]) => { for (const listener of programsEndedListeners) listener(userIds) })
  const programs = new ProgramAuth(fastify.db, new TokenVerifier({ secret: fastify.config.authJwtSecret, jwks: fastify.config.authJwks }))
  fastify.decorate('admitToken', async (token: string) => await programs.admitToken(token))
  fastify.decorateRequest('user', undefined)
  fastify.decorateRequest('programAuthentication', undefined)
  fastify.decorateRequest('credentialRefusal', undefined)
  // Right after @fastify/session has loaded the session, so every later hook sees the user:
  // the session's, or the one a program's credential admits (one query). A credential that
  // admits no one is a 401 at once, but on an upgrade, which its endpoint refuses before
  // the upgrade (src/chat-handshake.ts) and counts.
  fastify.addHook('onRequest', async (request) => {
    const credential = programCredentialOf(request)
    if (credential === undefined) {
      const { userId, userName } = request.session
      if (userId !== undefined && userName !== undefined) request.user = { id: userId, name: userName }
      return
    }
    let refusal
    try {
      const admission = await programs.admit(credential)
      if (admission.ok) {
        request.user = admission.user
        request.programAuthentication = admission.authentication
        return
      }
      refusal = new HttpError(401, 'unauthorized', admission.message)
    } catch (error) {
      request.log.warn({ err: error }, 'checking a key or token failed')
      refusal = new HttpError(503, 'unavailable', 'Could not check the key or token; try again')
    }
    request.credentialRefusal = refusal
    if (request.headers.upgrade === undefined) throw refusal
  })
  fastify.decorate('requireUser', async (request: FastifyRequest) => {
    if (request.credentialRefusal !== undefined) throw request.credentialRefusal
    if (request.user === undefined) throw new HttpError(401, 'unauthorized', 'Log in first')
  })

  repeatUntilClose(fastify, { everyMs: expiredSweepMs, failure: 'deleting expired sessions failed', atReady: true }, async () => {
    const count = await store.deleteExpired()
    if (count > 0) fastify.log.info({ count }, 'expired sessions deleted')
  })
}, { name: sessionPlugin, fastify: '5.x', dependencies: ['config', 'database'] })
