import Fastify, { type FastifyInstance, type FastifyServerOptions, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import { Ajv } from 'ajv'
import type { FastifySchemaCompiler } from 'fastify'
import { DrizzleQueryError } from 'drizzle-orm'
import type { Config } from '../src/config.js'
import type { TSchema } from '@sinclair/typebox'
import { ajvFormats, holdsUnstorable } from '../src/protocol.js'
import { HttpError } from '../src/errors.js'
import { RequestLog } from '../src/request-log.js'
import database from '../plugins/database.js'
import security from '../plugins/security.js'
import rateLimit from '../plugins/rate-limit.js'
import session from '../plugins/session.js'
import accounts from '../plugins/accounts.js'
import adminApi from '../plugins/admin-api.js'
import botsApi from '../plugins/bots-api.js'
import shutdown from '../plugins/shutdown.js'
import health from '../plugins/health.js'
import metrics from '../plugins/metrics.js'
import staticPage from '../plugins/static.js'
import websocket from '../plugins/websocket.js'
import topicBus from '../plugins/topic-bus.js'
import access from '../plugins/access.js'
import presence from '../plugins/presence.js'
import historyReads from '../plugins/history-reads.js'
import publish from '../plugins/publish.js'
import sessionSockets from '../plugins/session-sockets.js'
import chatEndpoint from '../plugins/chat-endpoint.js'
import topicsApi from '../plugins/topics-api.js'
import membersApi from '../plugins/members-api.js'
// endpoint imports: `npm run new:endpoint -- <name>` adds its plugin here

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

/** Request bodies larger than this are refused with 413 before they are parsed. */
const bodyLimitBytes = 64 * 1024
/**
 * How long one plugin may take to start. Fastify's 10 s is too short for opening the embedded
 * database and applying migrations on a busy machine (seen: a start-up failing with 'Plugin did
 * not start in time: database' at a load average of 15); each step has bounds of its own (a
 * Postgres connection 10 s), so this only stops a start-up that hangs.
 */
const pluginTimeoutMs = 120_000
/** Causes of a logged error that are cleaned of query values; a deeper chain is cut short. */
const maxLoggedCauses = 8

/** Query parameters whose values are secrets: a ticket opens /chat for as long as its session lives, a token for as long as it is valid. */
const secretParams = new Set(['ticket', 'token'])

/**
 * A url as it may be logged: the value of every `ticket` and `token` query parameter hidden.
 * A query whose names cannot be decoded is hidden whole, as the query parser might read a
 * secret in it.
 */
export function redactUrl (url: string): string {
  const queryAt = url.indexOf('?')
  if (queryAt === -1) return url
  const path = url.slice(0, queryAt)
  const params = url.slice(queryAt + 1).split('&')
  try {
    return `${path}?${params.map((param) => {
      const name = param.split('=', 1)[0] ?? ''
      const decoded = decodeURIComponent(name.replaceAll('+', ' '))
      return secretParams.has(decoded) ? `${decoded}=[redacted]` : param
    }).join('&')}`
  } catch {
    return `${path}?[redacted]`
  }
}

/** The Fastify options of every Canopy app, the server's and the tests' alike. */
export function fastifyOptions (config: Config): FastifyServerOptions {
  return {
    logger: {
      level: config.logLevel,
      // Fastify's own request fields, with the url's secrets hidden; headers are never logged.
      serializers: {
        req: (request: FastifyRequest) => ({
          method: request.method,
          url: redactUrl(request.url),
          host: request.host,
          remoteAddress: request.ip,
          remotePort: request.socket?.remotePort
        })
      },
      redact: ['req.headers.cookie', 'req.headers.authorization', 'res.headers["set-cookie"]'],
      hooks: {
        // Every line that logs an error, from any plugin, drops the values of failed queries.
        logMethod (args, method) {
          const [fields] = args
          if (typeof fields === 'object' && fields !== null && 'err' in fields) {
            args[0] = { ...fields, err: withoutQueryValues(fields.err) }
          }
          method.apply(this, args)
        }
      }
    },
    // One line a request, at debug for a successful read (src/request-log.ts).
    logController: new RequestLog(),
    // A url the router cannot read never reaches setErrorHandler: give it the same JSON.
    frameworkErrors: (error, request, reply) => { void errorHandler(error, request, reply) },
    bodyLimit: bodyLimitBytes,
    trustProxy: config.trustProxy,
    // A shutting-down instance stops listening at once and still answers the requests already
    // on its open connections (plugins/shutdown.ts): better an answer than a 503 to pass on.
    return503OnClosing: false,
    pluginTimeout: config.pluginTimeoutMs ?? pluginTimeoutMs
  }
}

/**
 * A query string or a path is text, so its numbers are coerced (Ajv, as Fastify does); a JSON
 * body is checked as sent, by TypeBox with the WebSocket's own formats: {"id":"5"} is no id,
 * {"text":123} no text.
 */
const coercingAjv = new Ajv({ coerceTypes: 'array', useDefaults: true, removeAdditional: false, allErrors: false, formats: ajvFormats })
const validatorCompiler: FastifySchemaCompiler<TSchema> = (route) => route.httpPart === 'body'
  ? TypeBoxValidatorCompiler(route)
  : coercingAjv.compile(route.schema)

/** The app factory: every plugin of Canopy, composed in dependency order. */
export async function buildApp (config: Config): Promise<FastifyInstance> {
  const app = Fastify(fastifyOptions(config))
  if (config.production && config.trustProxy === false) {
    app.log.warn('NODE_ENV=production and TRUST_PROXY is unset: the session cookie is Secure, so logins work only over HTTPS ' +
      'straight to this server; behind a TLS proxy, set TRUST_PROXY to its address')
  }
  await app.register(fp(async (fastify) => { fastify.decorate('config', config) }, { name: 'config', fastify: '5.x' }))
  app.setValidatorCompiler(validatorCompiler)
  app.setErrorHandler(errorHandler)
  // An empty body sent as JSON is no body, not a malformed one: POST /api/logout from a
  // client that always says application/json must log out. A route that needs a body still
  // refuses it (400, by its schema).
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8')
    if (text === '') done(null, undefined)
    else parseJson(request, text, done)
  })
  // A string Postgres cannot store, in any field of a JSON body, is refused before a route
  // reads it: the rule of the WebSocket's frames.
  app.addHook('preValidation', (request, _reply, done) => {
    done(request.body !== undefined && holdsUnstorable(request.body)
      ? new HttpError(400, 'bad_request', 'A field holds a NUL character or half a surrogate pair')
      : undefined)
  })
  app.setNotFoundHandler(async (request, reply) => {
    return await reply.code(404).send({ error: 'not_found', message: `No route for ${request.method} ${request.url.split('?')[0] ?? ''}` })
  })

  await app.register(shutdown)
  await app.register(security)
  await app.register(database)
  // Before the plugins that count into it (accounts, and everything after).
  await app.register(metrics)
  await app.register(rateLimit)
  await app.register(session)
  await app.register(accounts)
  await app.register(adminApi)
  await app.register(botsApi)
  await app.register(health)
  await app.register(websocket)
  await app.register(topicBus)
  await app.register(access)
  await app.register(presence)
  await app.register(historyReads)
  await app.register(publish)
  await app.register(sessionSockets)
  await app.register(chatEndpoint)
  // endpoint registrations: `npm run new:endpoint -- <name>` adds its plugin here
  await app.register(topicsApi)
  await app.register(membersApi)
  await app.register(staticPage)
  return app
}

const codesByStatus: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  413: 'payload_too_large',
  414: 'uri_too_long',
  415: 'unsupported_media_type',
  429: 'too_many_requests',
  503: 'unavailable'
}

/**
 * An error as it may be logged. A failed query's message and `params` hold the values it was
 * sent (a password hash, a session with its ticket, a whole batch of messages): each one in
 * the cause chain keeps only its SQL. The error itself is left as it is.
 */
function withoutQueryValues (error: unknown, depth = 0): unknown {
  if (depth > maxLoggedCauses) return undefined
  if (!(error instanceof Error)) return error
  const cause = withoutQueryValues(error.cause, depth + 1)
  if (error instanceof DrizzleQueryError) {
    const message = `Failed query: ${error.query}`
    return copyOf(error, { message, stack: error.stack?.replace(error.message, () => message), cause, params: undefined })
  }
  return cause === error.cause ? error : copyOf(error, { message: error.message, stack: error.stack, cause })
}

/** A copy of an error, of the same class, with some of its properties replaced. */
function copyOf (error: Error, replaced: Record<string, unknown>): Error {
  const copy = Object.assign(Object.create(Object.getPrototypeOf(error) as object) as Error, error)
  for (const [key, value] of Object.entries(replaced)) Object.defineProperty(copy, key, { value, writable: true, configurable: true })
  return copy
}

/** Every error leaves as JSON `{error, message}`; a 5xx never shows its details. */
async function errorHandler (error: FastifyError & { code?: string }, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const statusCode = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500
  if (statusCode >= 500) {
    request.log.error({ err: error }, 'request failed')
    await reply.code(statusCode).send({ error: codesByStatus[statusCode] ?? 'internal', message: statusCode === 503 ? 'Service unavailable; try again' : 'Internal server error' })
    return
  }
  const code = error.validation !== undefined
    ? 'bad_request'
    : error.name === 'HttpError' && error.code !== undefined ? error.code : codesByStatus[statusCode] ?? 'bad_request'
  const { retryAfterMs } = error as { retryAfterMs?: number }
  if (retryAfterMs === undefined) {
    await reply.code(statusCode).send({ error: code, message: error.message })
    return
  }
  await reply.code(statusCode).header('retry-after', String(Math.ceil(retryAfterMs / 1000))).send({ error: code, message: error.message, retryAfterMs })
}
