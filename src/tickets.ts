import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'

/**
 * The WebSocket ticket: a random secret kept in the HTTP session (GET /api/me hands it to
 * the page), which a socket must show in its URL to open. It proves the socket comes from
 * a page of this session, which a cookie alone cannot (a cross-site page sends cookies too).
 */

export function newWsTicket (): string {
  return randomBytes(24).toString('base64url')
}

/**
 * Whether the request's `ticket` query parameter is its HTTP session's wsTicket, compared
 * in constant time: what every WebSocket endpoint checks in open.
 */
export function showsItsTicket (request: FastifyRequest): boolean {
  const { ticket } = request.query as { ticket?: unknown }
  const expected = request.session.wsTicket
  if (typeof ticket !== 'string' || expected === undefined) return false
  const given = Buffer.from(ticket)
  const wanted = Buffer.from(expected)
  return given.length === wanted.length && timingSafeEqual(given, wanted)
}
