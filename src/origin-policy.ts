/** What the Origin rule reads of a request: Fastify's request has all of it. */
export interface OriginRequest {
  method: string
  /** The scheme as the request reached the server (behind a proxy: X-Forwarded-Proto, with TRUST_PROXY). */
  protocol: string | undefined
  host: string
  headers: { origin?: string, 'sec-fetch-site'?: string | string[] }
}

/** Methods that change state: a page on another site must not be able to send them with the user's cookie. */
const stateChanging = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** Whether `origin` is this server's own, as the request reached it (default ports ignored). */
export function isOwnOrigin (request: Pick<OriginRequest, 'protocol' | 'host'>, origin: string): boolean {
  // request.protocol is undefined for a request without a socket (injectWS).
  const protocol = request.protocol ?? 'http'
  try {
    return new URL(origin).origin === new URL(`${protocol}://${request.host}`).origin
  } catch {
    return false
  }
}

/** Whether an `Origin` header names the server itself or one of ALLOWED_ORIGINS. */
export function isAllowedOrigin (request: Pick<OriginRequest, 'protocol' | 'host'>, origin: string, allowedOrigins: readonly string[]): boolean {
  return isOwnOrigin(request, origin) || allowedOrigins.includes(origin)
}

/**
 * Why a state-changing request is refused as cross-site, or undefined when it may go on.
 * Browsers send `Origin` with every POST, PUT, PATCH and DELETE (fetch, forms, from any
 * page), so one that names another origin, or `null` (a sandboxed frame, a redirect), is
 * refused. A request without `Origin` is a program's (curl, a bot, a server), which never
 * carries the user's cookie by accident, and goes on, unless a browser says by
 * `Sec-Fetch-Site` that it comes from another site.
 */
export function crossSiteRefusal (request: OriginRequest, allowedOrigins: readonly string[]): string | undefined {
  if (!stateChanging.has(request.method)) return undefined
  const { origin } = request.headers
  if (origin !== undefined) {
    return isAllowedOrigin(request, origin, allowedOrigins) ? undefined : `Origin ${origin} is not allowed to send ${request.method} requests here`
  }
  const site = request.headers['sec-fetch-site']
  if (site === 'cross-site' || site === 'same-site') return `A ${site} ${request.method} request is not allowed here`
  return undefined
}
