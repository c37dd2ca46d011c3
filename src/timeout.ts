export class TimeoutError extends Error {
  override name = 'TimeoutError'
}

/**
 * Settles like `promise`, or rejects with a TimeoutError after `ms`. The work itself goes on
 * (a promise cannot be cancelled): use it where giving up waiting is what matters.
 */
export async function withTimeout<T> (promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new TimeoutError(message)) }, ms) })
    ])
  } finally {
    clearTimeout(timer)
  }
}
