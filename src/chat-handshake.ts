import type { FastifyRequest } from 'fastify'
import { refuse, type Refusal } from './endpoint.js'
import { isAllowedOrigin } from './origin-policy.js'
import type { ProgramAuthentication } from './program-auth.js'
import { defaultTopic } from './protocol.js'
import { showsItsTicket } from './tickets.js'
import type { User } from './users.js'

/** What the chat keeps per connection. */
export interface ChatState {
  user: User
  /**
   * The HTTP session that opened the socket: when it ends, by any path, the socket is closed.
   * Undefined for a program's socket, opened with a key or a token (`authentication`).
   */
  sessionId: string | undefined
  /** How a program's socket was admitted: a key, or a token that holds until it expires or an `auth` frame replaces it. */
  authentication: ProgramAuthentication | undefined
  /** Subscribed topics (the connection counts there for presence). */
  topics: Set<string>
  /** The topic of the URL, subscribed right after opening; undefined when it is no string. */
  firstTopic: string | undefined
}

export interface ChatHandshakeOptions {
  /** ALLOWED_ORIGINS: origins other than the server's own that may open /chat. */
  allowedOrigins: readonly string[]
  /** MAX_CONNECTIONS_PER_USER, on this instance. */
  maxConnectionsPerUser: number
}

/**
 * The checks of an upgrade to /chat, before any socket opens (docs/protocol.md, "Refusals
 * before the upgrade"): a logged-in session (401) showing its ticket (403), from an allowed
 * Origin (403), or a program's key or token that admits its user (401; no ticket or Origin
 * then: no browser sends it); within the user's connections (429). It counts the
 * connections per user.
 */
export class ChatHandshake {
  private readonly connectionsByUser = new Map<number, number>()

  constructor (private readonly options: ChatHandshakeOptions) {}

  /** The new connection's state, or why it may not open. */
  check (request: FastifyRequest): ChatState | Refusal {
    const { user, session, programAuthentication: authentication } = request
    const { credentialRefusal: refusal } = request
    if (refusal !== undefined) return refuse(refusal.statusCode, refusal.code, refusal.message)
    if (user === undefined) return refuse(401, 'unauthorized', 'Log in first')
    const { topic } = request.query as { topic?: unknown }
    if (authentication === undefined) {
      if (!showsItsTicket(request)) {
        return refuse(403, 'forbidden', 'The ticket is missing or not this session\'s (see GET /api/me)')
      }
      const origin = request.headers.origin
      if (origin !== undefined && !isAllowedOrigin(request, origin, this.options.allowedOrigins)) {
        return refuse(403, 'forbidden', `Origin ${origin} is not allowed`)
      }
    }
    const { maxConnectionsPerUser } = this.options
    if ((this.connectionsByUser.get(user.id) ?? 0) >= maxConnectionsPerUser) {
      return refuse(429, 'too_many_connections', `At most ${maxConnectionsPerUser} connections per user`)
    }
    return {
      user,
      sessionId: authentication === undefined ? session.sessionId : undefined,
      authentication,
      topics: new Set(),
      firstTopic: topic === undefined || topic === '' ? defaultTopic : typeof topic === 'string' ? topic : undefined
    }
  }

  /** A connection of the user opened. */
  opened (user: User): void {
    this.connectionsByUser.set(user.id, (this.connectionsByUser.get(user.id) ?? 0) + 1)
  }

  /** A connection of the user closed. */
  closed (user: User): void {
    const count = (this.connectionsByUser.get(user.id) ?? 1) - 1
    if (count > 0) this.connectionsByUser.set(user.id, count)
    else this.connectionsByUser.delete(user.id)
  }
}
