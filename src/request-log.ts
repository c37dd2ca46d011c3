import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'

/**
 * Which requests an operator reads at info. A successful read (a page asset, `GET /api/…`)
 * is most of the traffic and nothing to act on: debug. What changes state (POST, PUT,
 * PATCH, DELETE) and what failed (a 4xx or 5xx) stay at info.
 */
export function requestLogLevel (method: string, statusCode: number): 'debug' | 'info' {
  const reads = method === 'GET' || method === 'HEAD' || method === 'OPTIONS'
  return reads && statusCode < 400 ? 'debug' : 'info'
}

/** A WebSocket upgrade: it never completes as a request when it succeeds. */
function isUpgrade (request: FastifyRequest): boolean {
  return request.headers.upgrade !== undefined
}

/**
 * Fastify's request lines, one a request: its end, with what it was, how it ended and how
 * long it took, at the level of requestLogLevel. Its arrival is logged at debug only, but
 * for an upgrade, whose arrival is its only line when it succeeds. A route's own `logLevel`
 * (the health probes') still silences it.
 */
export class RequestLog extends LogController {
  override incomingRequest (request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return
    request.log[isUpgrade(request) ? 'info' : 'debug']({ req: request }, 'incoming request')
  }

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return
    const fields = { req: request, res: reply, responseTime: reply.elapsedTime }
    if (error !== null && error !== undefined) reply.log.error({ ...fields, err: error }, 'request errored')
    else reply.log[requestLogLevel(request.method, reply.statusCode)](fields, 'request completed')
  }
}
