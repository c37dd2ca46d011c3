import type { Queryable } from './db/database.js'
import { botOfKey, looksLikeBotKey } from './bots.js'
import { admitTokenUser, looksLikeToken, type TokenVerifier } from './tokens.js'
import type { User } from './users.js'

/**
 * How a program authenticates, instead of a session: `Authorization: Bearer KEY` (a bot,
 * src/bots.ts) or `Bearer JWT` (an application's user, src/tokens.ts) on any request, and
 * `?token=JWT` on a WebSocket upgrade, where a browser cannot set a header. Told apart by
 * shape; one indexed query admits either.
 */

/** How a program's request was admitted: by a key, or by a token that holds until `expiresAtMs`. */
export type ProgramAuthentication = { via: 'key' } | { via: 'token', expiresAtMs: number }

export type ProgramAdmission =
  | { ok: true, user: User, authentication: ProgramAuthentication }
  | { ok: false, message: string }

interface CredentialRequest {
  headers: { authorization?: string, upgrade?: string }
  query: unknown
}

/**
 * The program credential a request carries, or undefined for a browser's (a session's)
 * request: the Bearer credential, or on an upgrade the `token` query parameter. A request
 * that carries one is never a session's, whatever cookie comes with it.
 */
export function programCredentialOf (request: CredentialRequest): string | undefined {
  const { authorization } = request.headers
  if (authorization !== undefined) {
    const match = /^Bearer[ \t]+(\S*)[ \t]*$/i.exec(authorization)
    if (match !== null) return match[1] ?? ''
  }
  if (request.headers.upgrade === undefined) return undefined
  const { token } = (request.query ?? {}) as { token?: unknown }
  if (token === undefined) return undefined
  return typeof token === 'string' ? token : ''
}

export class ProgramAuth {
  constructor (private readonly db: Queryable, private readonly tokens: TokenVerifier) {}

  /** The user a credential admits, or why it admits no one (words for a 401). */
  async admit (credential: string): Promise<ProgramAdmission> {
    if (looksLikeBotKey(credential)) {
      const outcome = await botOfKey(this.db, credential)
      return outcome.ok ? { ok: true, user: outcome.user, authentication: { via: 'key' } } : outcome
    }
    if (looksLikeToken(credential)) return await this.admitToken(credential)
    return { ok: false, message: 'The credential is neither a bot key nor a signed token' }
  }

  /** The user a token admits, and until when: on a request, and in an `auth` frame. */
  async admitToken (token: string): Promise<ProgramAdmission> {
    const verified = await this.tokens.verify(token)
    if (!verified.ok) return verified
    const admitted = await admitTokenUser(this.db, verified.name)
    return admitted.ok ? { ok: true, user: admitted.user, authentication: { via: 'token', expiresAtMs: verified.expiresAtMs } } : admitted
  }
}
