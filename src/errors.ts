/** An error with an HTTP status and the machine-readable `error` code of the JSON body. */
export class HttpError extends Error {
  constructor (readonly statusCode: number, readonly code: string, message: string) {
    super(message)
    this.name = 'HttpError'
  }
}

/** Postgres's unique_violation, whether the driver or drizzle (as `cause`) threw it. */
export function isUniqueViolation (error: unknown): boolean {
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    if ((current as Error & { code?: unknown }).code === '23505') return true
  }
  return false
}
