/** An error with an HTTP status and the machine-readable `error` code of the JSON body. */
export class HttpError extends Error {
  constructor (
    readonly statusCode: number,
    readonly code: string,
    message: string,
    /** For a 429: the wait before the request would be accepted (Retry-After and `retryAfterMs`). */
    readonly retryAfterMs?: number
  ) {
    super(message)
    this.name = 'HttpError'
  }
}

/** The SQLSTATE of a Postgres error, whether the driver or drizzle (as `cause`) threw it. */
export function sqlState (error: unknown): string | undefined {
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    const code = (current as Error & { code?: unknown }).code
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code
  }
  return undefined
}

/** Postgres's unique_violation. */
export function isUniqueViolation (error: unknown): boolean {
  return sqlState(error) === '23505'
}

/**
 * An error that comes from the data of a statement (data exceptions, integrity violations,
 * program limits such as a value too large), not from the database being away or slow:
 * another statement without that data would have succeeded.
 */
export function isRefusedData (error: unknown): boolean {
  const state = sqlState(error)
  return state !== undefined && (state.startsWith('22') || state.startsWith('23') || state.startsWith('54'))
}

/** A start-up failure told in one line, such as a port in use. */
export class StartupError extends Error {
  override name = 'StartupError'
}
