import type { FastifyInstance } from 'fastify'

/**
 * HTTP as the tests speak it, whichever client made the request: fastify.inject's
 * response, fetch's, or node:http's.
 */

/** Listens on 127.0.0.1 (on `port`, or any free one); resolves with the base URL, http://127.0.0.1:port. */
export async function listen (app: FastifyInstance, port = 0): Promise<string> {
  return await app.listen({ port, host: '127.0.0.1' })
}

/** A response of any of the tests' clients: its status and headers, as that client gives them. */
export type AnyResponse =
  | { status: number, headers: Headers }
  | { statusCode: number, headers: Record<string, string | string[] | number | undefined> }
  | { status: number, headers: Record<string, string | string[] | number | undefined> }

/** Which server set the cookie: in production its name has the __Host- prefix. */
export interface CookieSite { production?: boolean }

/** The Set-Cookie line of the session cookie a response set; throws when it set none. */
function sessionSetCookie (response: AnyResponse, { production = false }: CookieSite): string {
  const { headers } = response
  const lines = headers instanceof Headers
    ? headers.getSetCookie()
    : [headers['set-cookie'] ?? []].flat().map(String)
  const name = production ? '__Host-canopy.sid' : 'canopy.sid'
  const line = lines.find((cookie) => cookie.startsWith(`${name}=`))
  if (line === undefined) throw new Error(`no ${name} cookie in a ${'status' in response ? response.status : response.statusCode} response`)
  return line
}

/** The `name=value` pair of the session cookie a response set, to send back as a Cookie header. */
export function sessionCookie (response: AnyResponse, site: CookieSite = {}): string {
  return sessionSetCookie(response, site).split(';')[0] ?? ''
}

/** Whether the session cookie a response set is marked Secure (sent over HTTPS only). */
export function sessionCookieIsSecure (response: AnyResponse, site: CookieSite = {}): boolean {
  return /;\s*Secure/i.test(sessionSetCookie(response, site))
}
