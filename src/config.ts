import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { Type, type Static } from '@sinclair/typebox'
import envSchema from 'env-schema'
import type { JSONWebKeySet } from 'jose'

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
type LogLevel = typeof logLevels[number]
const registrations = ['open', 'closed'] as const
/** `open`: anyone may register; `closed`: only administrators create accounts (POST /api/admin/users). */
export type Registration = typeof registrations[number]

/** Every variable of the configuration table (README.md, Configuration), with its default. */
const EnvSchema = Type.Object({
  NODE_ENV: Type.String({ default: 'development' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8800 }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  METRICS_HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  METRICS_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  SESSION_SECRET: Type.Optional(Type.String({ minLength: 32 })),
  HISTORY_LIMIT: Type.Integer({ minimum: 0, maximum: 1000, default: 30 }),
  KEEPALIVE_INTERVAL: Type.Number({ minimum: 0, maximum: 3600, default: 30 }),
  MAX_MESSAGE_CHARS: Type.Integer({ minimum: 1, maximum: 32768, default: 2000 }),
  ALLOWED_ORIGINS: Type.String({ default: '' }),
  // An enum, not a union of constants: a bad value is then one error that names the levels.
  LOG_LEVEL: Type.Unsafe<LogLevel>({ type: 'string', enum: logLevels, default: 'info' }),
  PUBLISH_RATE: Type.Number({ exclusiveMinimum: 0, default: 20 }),
  PUBLISH_BURST: Type.Integer({ minimum: 1, default: 60 }),
  LOGIN_ATTEMPTS: Type.Integer({ minimum: 1, default: 10 }),
  REGISTER_ATTEMPTS: Type.Integer({ minimum: 1, default: 20 }),
  TRUST_PROXY: Type.String({ default: '' }),
  MAX_CONNECTIONS_PER_USER: Type.Integer({ minimum: 1, default: 20 }),
  SEND_BUFFER_LIMIT: Type.Integer({ minimum: 1024, default: 1024 * 1024 }),
  HISTORY_READ_RATE: Type.Number({ exclusiveMinimum: 0, default: 20 }),
  HISTORY_READ_BURST: Type.Integer({ minimum: 1, default: 100 }),
  PRESENCE_TTL: Type.Number({ minimum: 1, maximum: 3600, default: 30 }),
  PRESENCE_GRACE: Type.Number({ minimum: 0, maximum: 3600, default: 5 }),
  TOPIC_CREATE_RATE: Type.Integer({ minimum: 1, default: 60 }),
  REGISTRATION: Type.Unsafe<Registration>({ type: 'string', enum: registrations, default: 'open' }),
  AUTH_JWT_SECRET: Type.Optional(Type.String({ minLength: 32 })),
  AUTH_JWKS_FILE: Type.Optional(Type.String({ minLength: 1 }))
})
type Env = Static<typeof EnvSchema>

export interface Config {
  production: boolean
  port: number
  host: string
  /** The address the metrics listener binds: its own setting, never `host` unless set to it. */
  metricsHost: string
  /** Where Prometheus metrics are served, on `metricsHost`, by a listener of their own; undefined: nowhere. */
  metricsPort: number | undefined
  /** Unset means the embedded PGlite database under `dataDir`. */
  databaseUrl: string | undefined
  dataDir: string
  sessionSecret: string
  historyLimit: number
  keepaliveIntervalMs: number
  maxMessageChars: number
  allowedOrigins: string[]
  logLevel: string
  publishRatePerSecond: number
  publishBurst: number
  /** Per client address and name; one address gets 10× this over all names. */
  loginAttemptsPerMinute: number
  /** Per client address. */
  registerAttemptsPerHour: number
  /**
   * Fastify's trustProxy: whether X-Forwarded-* headers are believed. Needed behind a
   * TLS-terminating proxy in production, where the session cookie is Secure.
   */
  trustProxy: boolean | string[]
  /** Open /chat sockets one user may hold on one instance; more are refused with 429. */
  maxConnectionsPerUser: number
  /** Unsent bytes a socket may hold before it is closed as a slow consumer (1013). */
  sendBufferLimitBytes: number
  /** History reads (subscribes, history pages) per user per second on one instance, and the burst. */
  historyReadsPerSecond: number
  historyReadsBurst: number
  /** Seconds after which the users of an instance that stopped without a word have left. */
  presenceTtlSeconds: number
  /** Seconds a `left` waits for the user to come back before the others are told. */
  presenceGraceSeconds: number
  /** New topics one user may bring into being per hour, across all instances. */
  topicCreatesPerHour: number
  /** Whether POST /api/register is open to anyone, or closed: accounts are made by administrators. */
  registration: Registration
  /**
   * How an application's own users are admitted by signed token (src/tokens.ts): the HS256
   * secret (AUTH_JWT_SECRET) and the public keys of a JWKS file (AUTH_JWKS_FILE, read once at
   * start), for RS256 and ES256. Neither set: no token admits anyone.
   */
  authJwtSecret: string | undefined
  authJwks: JSONWebKeySet | undefined
  /**
   * The bounds of the 5 s guarantee (a publish not committed in time answers `unavailable`),
   * never read from the environment: undefined is the guarantee's own, 1 s in the publish
   * queue (src/publish-queue.ts) and 3 s for a statement (src/db/postgres.ts). A test raises
   * them where the bound is not what it tests, so a starved CPU does not fail it.
   */
  publishQueueWaitMs?: number
  statementTimeoutMs?: number
  /** How long a plugin may take to start (Fastify's pluginTimeout; 0: no limit); undefined: server/app.ts's 120 s. Not read from the environment. */
  pluginTimeoutMs?: number
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

interface AjvError { instancePath: string, message?: string, params?: Record<string, unknown> }

function describe (errors: AjvError[] | undefined, fallback: string): string {
  if (errors === undefined || errors.length === 0) return fallback
  // One reason per variable, the first: a value may break several keywords at once.
  const reasons = new Map<string, string>()
  for (const error of errors) {
    const variable = error.instancePath.replace(/^\//, '') || String(error.params?.missingProperty ?? 'environment')
    const allowed = error.params?.allowedValues
    const reason = `${variable} ${error.message ?? 'is invalid'}${Array.isArray(allowed) ? `: ${allowed.join(', ')}` : ''}`
    if (!reasons.has(variable)) reasons.set(variable, reason)
  }
  return [...reasons.values()].join('; ')
}

/**
 * Validates the environment once, at start. `env` is the whole environment to read:
 * process.env in the server (after .env is loaded), a plain object in tests.
 */
export function loadConfig (env: Record<string, string | undefined>): Config {
  let parsed: Env
  try {
    // env-schema drops unknown keys from the object it validates: give it a copy.
    parsed = envSchema<Env>({ schema: EnvSchema, data: { ...env }, env: false })
  } catch (error) {
    const { message, errors } = error as Error & { errors?: AjvError[] }
    throw new ConfigError(`Invalid configuration: ${describe(errors, message)}`)
  }

  const production = parsed.NODE_ENV === 'production'
  const dataDir = resolve(parsed.DATA_DIR)
  let sessionSecret = parsed.SESSION_SECRET
  if (sessionSecret === undefined) {
    if (production) throw new ConfigError('Invalid configuration: SESSION_SECRET is required when NODE_ENV=production (at least 32 characters)')
    sessionSecret = developmentSecret(dataDir)
  }

  const allowedOrigins = parsed.ALLOWED_ORIGINS.split(',').map((origin) => origin.trim()).filter((origin) => origin !== '')
  for (const origin of allowedOrigins) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new ConfigError(`Invalid configuration: ALLOWED_ORIGINS entry "${origin}" is not an origin like https://chat.example.com`)
    }
  }

  const metricsPort = parsed.METRICS_PORT
  if (metricsPort !== undefined && metricsPort !== 0 && metricsPort === parsed.PORT) {
    throw new ConfigError(`Invalid configuration: METRICS_PORT must differ from PORT (${metricsPort}): metrics have a listener of their own`)
  }

  return {
    trustProxy: parseTrustProxy(parsed.TRUST_PROXY),
    maxConnectionsPerUser: parsed.MAX_CONNECTIONS_PER_USER,
    sendBufferLimitBytes: parsed.SEND_BUFFER_LIMIT,
    production,
    port: parsed.PORT,
    host: parsed.HOST,
    metricsHost: parsed.METRICS_HOST,
    metricsPort,
    databaseUrl: parsed.DATABASE_URL,
    dataDir,
    sessionSecret,
    historyLimit: parsed.HISTORY_LIMIT,
    keepaliveIntervalMs: Math.round(parsed.KEEPALIVE_INTERVAL * 1000),
    maxMessageChars: parsed.MAX_MESSAGE_CHARS,
    allowedOrigins,
    logLevel: parsed.LOG_LEVEL,
    publishRatePerSecond: parsed.PUBLISH_RATE,
    publishBurst: parsed.PUBLISH_BURST,
    loginAttemptsPerMinute: parsed.LOGIN_ATTEMPTS,
    registerAttemptsPerHour: parsed.REGISTER_ATTEMPTS,
    historyReadsPerSecond: parsed.HISTORY_READ_RATE,
    historyReadsBurst: parsed.HISTORY_READ_BURST,
    presenceTtlSeconds: parsed.PRESENCE_TTL,
    presenceGraceSeconds: parsed.PRESENCE_GRACE,
    topicCreatesPerHour: parsed.TOPIC_CREATE_RATE,
    registration: parsed.REGISTRATION,
    authJwtSecret: parsed.AUTH_JWT_SECRET,
    authJwks: parsed.AUTH_JWKS_FILE === undefined ? undefined : readJwks(parsed.AUTH_JWKS_FILE)
  }
}

/** The key set of AUTH_JWKS_FILE: a JSON object with a non-empty `keys` array, or one clear line why not. */
function readJwks (file: string): JSONWebKeySet {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'))
  } catch (error) {
    const reason = error instanceof SyntaxError ? 'is not JSON' : `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`
    throw new ConfigError(`Invalid configuration: AUTH_JWKS_FILE ${file} ${reason}`)
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((key) => typeof key === 'object' && key !== null && typeof (key as { kty?: unknown }).kty === 'string')) {
    throw new ConfigError(`Invalid configuration: AUTH_JWKS_FILE ${file} is not a JWKS: a JSON object with a non-empty "keys" array of keys`)
  }
  return parsed as JSONWebKeySet
}

function parseTrustProxy (value: string): boolean | string[] {
  const trimmed = value.trim()
  if (trimmed === '' || trimmed === 'false') return false
  if (trimmed === 'true') return true
  return trimmed.split(',').map((address) => address.trim()).filter((address) => address !== '')
}

/** A development secret made once and kept in DATA_DIR, so logins survive restarts. */
function developmentSecret (dataDir: string): string {
  const file = join(dataDir, 'session-secret')
  try {
    const kept = readFileSync(file, 'utf8').trim()
    if (kept.length >= 32) return kept
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  mkdirSync(dataDir, { recursive: true })
  const secret = randomBytes(32).toString('base64url')
  writeFileSync(file, secret + '\n', { mode: 0o600 })
  return secret
}
