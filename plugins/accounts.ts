import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import type { Static, TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { HttpError } from '../src/errors.js'
import { Credentials, LoginBody, LogoutBody, maxPasswordChars, MeBody, minPasswordChars, PasswordChange, UserBody } from '../src/protocol.js'
import { hashPassword, verifyPassword } from '../src/passwords.js'
import { changePassword, createUser, findUserByName, passwordHashOf, standingOf, type User } from '../src/users.js'
import { maxSessionsPerUser } from '../src/session-store.js'
import { loginLimits, registrationLimits } from '../src/attempt-limiter.js'
import { newWsTicket } from '../src/tickets.js'
import type { AuthOutcome } from './metrics.js'

const passwordRule = `A password is ${minPasswordChars} to ${maxPasswordChars} characters`

/**
 * Says in words which rule a registration broke, rather than the validator's pattern; an
 * administrator's POST /api/admin/users says the same.
 */
export function registrationError (errors: Array<{ instancePath: string }>): Error {
  const fields = new Set(errors.map((error) => error.instancePath))
  if (fields.has('/username')) return new Error('A name is 3 to 32 characters: letters, digits, _ . or -')
  if (fields.has('/password')) return new Error(passwordRule)
  return new Error('Send {"username","password"} as JSON')
}

function passwordChangeError (errors: Array<{ instancePath: string }>): Error {
  return new Error(errors.some((error) => error.instancePath === '/new') ? `The new password: ${passwordRule.toLowerCase()}` : 'Send {"current","new"} as JSON')
}

const invalidCredentials = (): HttpError => new HttpError(401, 'invalid_credentials', 'Unknown name or wrong password')

/** The name a login attempt was made for: the preHandlers run after validation, so the body is a LoginBody. */
const nameOf = (request: FastifyRequest): string => (request.body as Static<typeof LoginBody>).username

/**
 * An account event, one info line and one count of `canopy_auth_total`: who (the name as sent
 * or as registered) and from which address. Never a password, a cookie or a ticket.
 */
function authEvent (request: FastifyRequest, outcome: AuthOutcome, fields: Record<string, unknown>): void {
  request.server.metrics.authenticated(outcome)
  request.log.info({ auth: outcome, ...fields, address: request.ip }, `auth: ${outcome}`)
}

/** Register, log in, log out, who-am-I and the password change, on the HTTP session. */
export default fp(async function accounts (fastify) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { loginAttemptsPerMinute, registerAttemptsPerHour, registration } = fastify.config
  const sessionEnded = (sessionId: string): void => { fastify.sessionEnded(sessionId) }

  const startSession = async (request: FastifyRequest, user: User): Promise<void> => {
    // A new session id at login, so a session id planted before login is worth nothing.
    // regenerate() destroys the session the request came with and replaces request.session:
    // read it only afterwards. A logged-in session replaced so has ended.
    const replaced = request.user === undefined ? undefined : request.session.sessionId
    await request.session.regenerate()
    if (replaced !== undefined) sessionEnded(replaced)
    // Room for the new session, which is stored as the reply is sent. Two logins of one user
    // at the same instant may each leave the other's in place: 21 until the next login.
    for (const ended of await fastify.sessionStore.endOldest({ userId: user.id, keep: maxSessionsPerUser - 1 })) sessionEnded(ended)
    const { session } = request
    session.userId = user.id
    session.userName = user.name
    session.wsTicket = newWsTicket()
  }

  /**
   * In production the session cookie is Secure, and a browser drops it over plain HTTP:
   * a login that reaches the server so is refused in words, instead of a cookie that vanishes.
   */
  const requireSecureTransport = async (request: FastifyRequest): Promise<void> => {
    if (fastify.config.production && request.protocol !== 'https') {
      throw new HttpError(403, 'insecure_transport', 'This server runs in production, where the session cookie is only sent over HTTPS: ' +
        'reach it over HTTPS, or through a TLS proxy with TRUST_PROXY set so that its X-Forwarded-Proto is believed')
    }
  }

  /** REGISTRATION=closed: refused before the body is read, and not counted. */
  const requireOpenRegistration = async (): Promise<void> => {
    if (registration === 'closed') {
      throw new HttpError(403, 'registration_closed', 'Registration is closed on this server: an administrator creates accounts')
    }
  }

  app.post('/api/register', {
    onRequest: [requireSecureTransport, requireOpenRegistration],
    schema: { body: Credentials, response: { 201: UserBody } },
    schemaErrorFormatter: registrationError,
    // After validation: a body refused with 400 costs no password hash, so it is not counted.
    preHandler: fastify.limitAttempts({
      limitsOf: (request) => registrationLimits({ ip: request.ip, attemptsPerHour: registerAttemptsPerHour }),
      onLimited: (request) => { authEvent(request, 'limited', { attempt: 'register' }) }
    })
  }, async (request, reply) => {
    const { username, password } = request.body
    const user = await createUser(fastify.db.orm, username, await hashPassword(password))
    if (user === undefined) throw new HttpError(409, 'name_taken', `The name ${username} is taken`)
    await startSession(request, user)
    authEvent(request, 'registered', { user: user.name })
    return await reply.code(201).send({ user })
  })

  app.post('/api/login', {
    onRequest: requireSecureTransport,
    schema: { body: LoginBody, response: { 200: UserBody } },
    schemaErrorFormatter: () => new Error('Send {"username","password"} as JSON'),
    // After validation, so the body is a LoginBody; the name is counted without regard to case.
    preHandler: fastify.limitAttempts({
      limitsOf: (request) => loginLimits({ ip: request.ip, name: nameOf(request), attemptsPerMinute: loginAttemptsPerMinute }),
      onLimited: (request) => { authEvent(request, 'limited', { attempt: 'login', user: nameOf(request) }) }
    })
  }, async (request) => {
    const { username, password } = request.body
    const found = await findUserByName(fastify.db.orm, username)
    if (!await verifyPassword(found?.passwordHash, password) || found === undefined) {
      authEvent(request, 'failed', { user: username })
      throw invalidCredentials()
    }
    // Only after the password: a wrong one says nothing of whether the account is disabled.
    if (found.disabled) {
      authEvent(request, 'failed', { user: found.name, reason: 'disabled' })
      throw new HttpError(403, 'disabled', 'This account is disabled by an administrator')
    }
    const user = { id: found.id, name: found.name }
    await startSession(request, user)
    authEvent(request, 'login', { user: user.name })
    return { user }
  })

  app.post('/api/logout', {
    schema: { body: LogoutBody },
    schemaErrorFormatter: () => new Error('Send no body, {} or {"everywhere":true}')
  }, async (request, reply) => {
    const { sessionId } = request.session
    const { user } = request
    const everywhere = request.body?.everywhere === true
    // Every other session of the user first: were the database to fail here, this one lives on
    // and the logout can be tried again.
    const others = everywhere && user !== undefined ? await fastify.sessionStore.endAllOf(user.id) : []
    await request.session.destroy()
    fastify.clearSessionCookie(reply)
    if (user !== undefined) {
      const ended = new Set([sessionId, ...others])
      for (const id of ended) sessionEnded(id)
      authEvent(request, 'logout', { user: user.name, everywhere, sessions: ended.size })
    }
    return await reply.code(204).send()
  })

  app.get('/api/me', { schema: { response: { 200: MeBody } }, preHandler: fastify.requireUser }, async (request, reply) => {
    const user = request.user as User
    // Read on every call, never kept in the session: a grant or a revoke shows at once.
    const standing = await standingOf(fastify.db, user.id)
    if (standing === undefined || standing.disabled) throw new HttpError(401, 'unauthorized', 'Log in first')
    request.session.wsTicket ??= newWsTicket()
    // The ticket is a secret: no cache along the way may keep a copy.
    void reply.header('cache-control', 'no-store')
    return { user: { ...user, admin: standing.admin }, wsTicket: request.session.wsTicket }
  })

  app.post('/api/password', {
    schema: { body: PasswordChange },
    schemaErrorFormatter: passwordChangeError,
    // A wrong current password is a guess like a failed login: counted by the same limits,
    // under the user's name, so a stolen session cannot try passwords faster than a login can.
    preHandler: [fastify.requireUser, fastify.limitAttempts({
      limitsOf: (request) => loginLimits({ ip: request.ip, name: (request.user as User).name, attemptsPerMinute: loginAttemptsPerMinute }),
      onLimited: (request) => { authEvent(request, 'limited', { attempt: 'password', user: request.user?.name }) }
    })]
  }, async (request, reply) => {
    const user = request.user as User
    const { current, new: password } = request.body
    if (!await verifyPassword(await passwordHashOf(fastify.db.orm, user.id), current)) {
      authEvent(request, 'failed', { attempt: 'password', user: user.name })
      throw new HttpError(401, 'invalid_credentials', 'The current password is wrong')
    }
    const ended = await changePassword(fastify.db, { userId: user.id, passwordHash: await hashPassword(password), keepSessionId: request.session.sessionId })
    for (const sessionId of ended) sessionEnded(sessionId)
    request.log.info({ auth: 'password', user: user.name, address: request.ip, sessions: ended.length }, 'auth: password changed')
    return await reply.code(204).send()
  })
}, { name: 'accounts', fastify: '5.x', dependencies: ['config', 'database', 'session', 'rate-limit', 'metrics'] })
