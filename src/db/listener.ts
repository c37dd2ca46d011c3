import pg from 'pg'
import { withTimeout } from '../timeout.js'
import type { ListenHandlers, Listener } from './database.js'

const listenBackoffMs = { first: 1000, max: 30_000 }
const listenHealthCheckMs = 5000
const listenHealthTimeoutMs = 3000

/**
 * One dedicated connection outside the pool, named `canopy-bus` in pg_stat_activity.
 * It dies silently (half-open TCP, failover, pg_terminate_backend), so it is checked on a
 * timer and reconnected forever with backoff and jitter.
 */
export async function listenWithReconnect (connection: pg.ClientConfig, channel: string, handlers: ListenHandlers): Promise<Listener> {
  let client: pg.Client | undefined
  let up = false
  let closed = false
  let attempt = 0
  let retryTimer: NodeJS.Timeout | undefined
  let healthTimer: NodeJS.Timeout | undefined

  const connect = async (): Promise<void> => {
    const next = new pg.Client({ ...connection, application_name: 'canopy-bus', keepAlive: true })
    next.on('notification', (message) => {
      if (message.channel === channel && message.payload !== undefined) handlers.onNotify(message.payload)
    })
    next.on('error', (error) => { lost(next, error) })
    next.on('end', () => { lost(next, new Error('LISTEN connection ended')) })
    client = next
    await next.connect()
    await next.query(`LISTEN "${channel.replaceAll('"', '""')}"`)
    if (closed) { await next.end(); return }
    const wasDown = attempt > 0
    up = true
    attempt = 0
    healthTimer = setInterval(() => { void check(next) }, listenHealthCheckMs).unref()
    if (wasDown) handlers.onUp?.()
  }

  const check = async (target: pg.Client): Promise<void> => {
    try {
      await withTimeout(target.query('SELECT 1'), listenHealthTimeoutMs, 'LISTEN connection health check timed out')
    } catch (error) {
      lost(target, error as Error)
    }
  }

  const lost = (target: pg.Client, error: Error): void => {
    if (target !== client || closed) return
    client = undefined
    clearInterval(healthTimer)
    target.removeAllListeners('end')
    target.end().catch(() => {})
    if (up) {
      up = false
      handlers.onDown?.(error)
    }
    scheduleRetry()
  }

  const scheduleRetry = (): void => {
    if (closed || retryTimer !== undefined) return
    attempt += 1
    const ceiling = Math.min(listenBackoffMs.max, listenBackoffMs.first * 2 ** (attempt - 1))
    const delay = ceiling / 2 + Math.random() * ceiling / 2
    retryTimer = setTimeout(() => {
      retryTimer = undefined
      connect().catch((error: Error) => {
        if (client !== undefined) lost(client, error)
        else scheduleRetry()
      })
    }, delay)
    retryTimer.unref()
  }

  await connect()
  return {
    get up () { return up },
    async close () {
      closed = true
      up = false
      clearTimeout(retryTimer)
      clearInterval(healthTimer)
      const last = client
      client = undefined
      if (last !== undefined) await last.end().catch(() => {})
    }
  }
}
