import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config.js'
import { tempDir } from '../helpers/app.js'

t.test('defaults follow the SPEC', async (t) => {
  const config = loadConfig({ DATA_DIR: tempDir(t) })
  t.equal(config.port, 8800)
  t.equal(config.host, '127.0.0.1')
  t.equal(config.databaseUrl, undefined)
  t.equal(config.historyLimit, 30)
  t.equal(config.keepaliveIntervalMs, 30_000)
  t.equal(config.maxMessageChars, 2000)
  t.same(config.allowedOrigins, [])
  t.equal(config.logLevel, 'info')
  t.equal(config.publishRatePerSecond, 20)
  t.equal(config.publishBurst, 60)
  t.equal(config.loginAttemptsPerMinute, 10)
  t.equal(config.registerAttemptsPerHour, 20)
  t.equal(config.production, false)
  t.equal(config.registration, 'open')
})

t.test('values are read and coerced from strings', async (t) => {
  const config = loadConfig({
    DATA_DIR: tempDir(t),
    PORT: '9000',
    KEEPALIVE_INTERVAL: '0.5',
    ALLOWED_ORIGINS: 'https://a.example, http://b.example:8080',
    DATABASE_URL: 'postgres://u:p@db:5432/canopy',
    LOG_LEVEL: 'warn',
    REGISTER_ATTEMPTS: '5',
    REGISTRATION: 'closed'
  })
  t.equal(config.port, 9000)
  t.equal(config.keepaliveIntervalMs, 500)
  t.same(config.allowedOrigins, ['https://a.example', 'http://b.example:8080'])
  t.equal(config.databaseUrl, 'postgres://u:p@db:5432/canopy')
  t.equal(config.logLevel, 'warn')
  t.equal(config.registerAttemptsPerHour, 5)
  t.equal(config.registration, 'closed')
})

const refusals: Array<[string, Record<string, string>, RegExp]> = [
  ['a port that is not a number', { PORT: 'eighty' }, /^Invalid configuration: PORT must be integer/],
  ['a port out of range', { PORT: '70000' }, /^Invalid configuration: PORT must be <= 65535/],
  ['a negative history limit', { HISTORY_LIMIT: '-1' }, /HISTORY_LIMIT must be >= 0/],
  ['an unknown log level', { LOG_LEVEL: 'loud' }, /^Invalid configuration: LOG_LEVEL must be equal to one of the allowed values: fatal, error, warn, info, debug, trace, silent$/],
  ['an unknown registration mode', { REGISTRATION: 'invite' }, /^Invalid configuration: REGISTRATION must be equal to one of the allowed values: open, closed$/],
  ['a database URL of another kind', { DATABASE_URL: 'mysql://x' }, /DATABASE_URL must match/],
  ['a short session secret', { SESSION_SECRET: 'short' }, /SESSION_SECRET must NOT have fewer than 32 characters/],
  ['a zero publish rate', { PUBLISH_RATE: '0' }, /PUBLISH_RATE must be > 0/],
  ['no registrations at all', { REGISTER_ATTEMPTS: '0' }, /^Invalid configuration: REGISTER_ATTEMPTS must be >= 1/],
  ['a fraction of a registration', { REGISTER_ATTEMPTS: '1.5' }, /^Invalid configuration: REGISTER_ATTEMPTS must be integer/],
  ['an origin that is not an origin', { ALLOWED_ORIGINS: 'example.com' }, /ALLOWED_ORIGINS entry "example.com"/],
  ['production without a session secret', { NODE_ENV: 'production' }, /SESSION_SECRET is required when NODE_ENV=production/]
]
for (const [what, env, message] of refusals) {
  t.test(`refuses ${what} with one line naming the variable`, async (t) => {
    const error = t.throws(() => loadConfig({ DATA_DIR: tempDir(t), ...env }))
    t.type(error, ConfigError)
    t.match(String((error as Error).message), message)
    t.notMatch(String((error as Error).message), /\n/, 'one line')
  })
}

t.test('production takes the session secret it is given', async (t) => {
  const secret = 'x'.repeat(40)
  const config = loadConfig({ DATA_DIR: tempDir(t), NODE_ENV: 'production', SESSION_SECRET: secret })
  t.equal(config.sessionSecret, secret)
  t.equal(config.production, true)
})

t.test('a development session secret is generated once and kept in DATA_DIR', async (t) => {
  const dataDir = tempDir(t)
  const first = loadConfig({ DATA_DIR: dataDir }).sessionSecret
  t.ok(first.length >= 32)
  t.equal(readFileSync(join(dataDir, 'session-secret'), 'utf8').trim(), first)
  t.equal(loadConfig({ DATA_DIR: dataDir }).sessionSecret, first, 'the same secret after a restart')
  t.not(loadConfig({ DATA_DIR: tempDir(t) }).sessionSecret, first, 'another data directory, another secret')
})
