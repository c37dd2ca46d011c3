import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose'
import type { Queryable } from './db/database.js'
import { namePattern } from './protocol.js'
import type { User } from './users.js'

/**
 * An application's own users, admitted by a token it signs (a JWT): HS256 with
 * AUTH_JWT_SECRET, RS256 or ES256 with a key of AUTH_JWKS_FILE. The token's `sub` is the
 * user's name (the name rule applies) and `exp` is required; the user is made on first
 * sight, as an account of kind `token`, which no password opens. A token never names a
 * password account or a bot.
 */

/** A token as it travels: three base64url parts (a bot key has a prefix of its own, src/bots.ts). */
const tokenPattern = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

export function looksLikeToken (credential: string): boolean {
  return tokenPattern.test(credential)
}

export type TokenOutcome = { ok: true, name: string, expiresAtMs: number } | { ok: false, message: string }

export interface TokenKeys {
  /** AUTH_JWT_SECRET: HS256. */
  secret: string | undefined
  /** AUTH_JWKS_FILE's keys: RS256, ES256. */
  jwks: JSONWebKeySet | undefined
}

/** Checks tokens against the configured keys; without any, every token is refused. */
export class TokenVerifier {
  private readonly algorithms: string[] = []
  private readonly key: JWTVerifyGetKey | undefined

  constructor ({ secret, jwks }: TokenKeys) {
    const secretKey = secret === undefined ? undefined : new TextEncoder().encode(secret)
    const keySet = jwks === undefined ? undefined : createLocalJWKSet(jwks)
    if (secretKey !== undefined) this.algorithms.push('HS256')
    if (keySet !== undefined) this.algorithms.push('RS256', 'ES256')
    if (secretKey === undefined && keySet === undefined) return
    this.key = async (header, token) => {
      if (header.alg === 'HS256' && secretKey !== undefined) return secretKey
      if (keySet !== undefined) return await keySet(header, token)
      throw new errors.JOSEAlgNotAllowed('no key for this alg')
    }
  }

  /** Whether tokens are accepted at all (AUTH_JWT_SECRET or AUTH_JWKS_FILE is set). */
  get enabled (): boolean {
    return this.key !== undefined
  }

  /** The name a token admits and when it expires, or why it admits no one (words for the 401, never the token). */
  async verify (token: string): Promise<TokenOutcome> {
    if (this.key === undefined) return { ok: false, message: 'This server admits no tokens (neither AUTH_JWT_SECRET nor AUTH_JWKS_FILE is set)' }
    let payload
    try {
      ({ payload } = await jwtVerify(token, this.key, { algorithms: this.algorithms, requiredClaims: ['exp', 'sub'] }))
    } catch (error) {
      return { ok: false, message: refusalOf(error) }
    }
    const { sub, exp } = payload as { sub: string, exp: number }
    if (!namePattern.test(sub)) return { ok: false, message: 'The token\'s sub is not a name: 3 to 32 characters, letters, digits, _ . or -' }
    return { ok: true, name: sub, expiresAtMs: exp * 1000 }
  }
}

function refusalOf (error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'The token has expired'
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === 'missing') return `The token has no ${error.claim} claim: exp and sub are required`
    return `The token's ${error.claim} claim is not valid`
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'The token\'s signature does not verify'
  if (error instanceof errors.JWKSNoMatchingKey) return 'No key of AUTH_JWKS_FILE matches the token'
  if (error instanceof errors.JOSEAlgNotAllowed) return 'The token is signed with an algorithm this server does not accept'
  return 'The token is not a valid signed JWT'
}

/**
 * The user a verified token names: the one of kind `token` with that name (whatever its
 * case), made on first sight. Read first (the common case, one indexed query); a new name is
 * inserted with ON CONFLICT, and read again when another request made it meanwhile.
 */
export async function admitTokenUser (db: Queryable, name: string): Promise<{ ok: true, user: User } | { ok: false, message: string }> {
  let row = await tokenUserNamed(db, name)
  if (row === undefined) {
    [row] = await db.query<TokenUserRow>(
      'INSERT INTO users (name, kind) VALUES ($1, \'token\') ON CONFLICT DO NOTHING RETURNING id, name, kind, false AS disabled', [name])
    row ??= await tokenUserNamed(db, name)
    if (row === undefined) return { ok: false, message: 'The token\'s user could not be made; try again' }
  }
  if (row.kind !== 'token') return { ok: false, message: `The name ${name} belongs to a ${row.kind === 'bot' ? 'bot' : 'password account'}: a token cannot admit it` }
  if (row.disabled) return { ok: false, message: 'This account is disabled by an administrator' }
  return { ok: true, user: { id: row.id, name: row.name } }
}

interface TokenUserRow { id: number, name: string, kind: string, disabled: boolean }

async function tokenUserNamed (db: Queryable, name: string): Promise<TokenUserRow | undefined> {
  const [row] = await db.query<TokenUserRow>(
    'SELECT id, name, kind, disabled_at IS NOT NULL AS disabled FROM users WHERE lower(name) = lower($1)', [name], 'canopy_token_user')
  return row
}
