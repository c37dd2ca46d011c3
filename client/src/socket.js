// @ts-check

/**
 * One WebSocket to /chat, whatever implements it: the browser's own, or one passed in for
 * Node (`ws`'s WebSocket class, which also takes headers). It reads frames as JSON and tells
 * how it closed, with the HTTP status of an upgrade the server refused when the
 * implementation says (`ws` does; a browser never tells). What waits to be sent again on it
 * waits on its timers, which close with it.
 */

/**
 * What this library needs of a WebSocket: the browser's, `ws`'s and undici's all fit (as
 * methods, whose parameters TypeScript compares loosely enough for `ws`'s typed events).
 * @typedef {{
 *   readyState: number,
 *   send(data: string): void,
 *   close(code?: number, reason?: string): void,
 *   addEventListener(type: string, listener: (event: any) => void): void
 * }} WebSocketLike
 */
/**
 * A WebSocket class: called as `new WebSocket(url)`, or `new WebSocket(url, { headers })`
 * when there are headers to send (a key, a cookie).
 * @typedef {new (...args: any[]) => WebSocketLike} WebSocketClass
 */

/** WebSocket's readyState when open, the same in every implementation. */
const openState = 1

/**
 * @typedef {object} SocketListeners
 * @property {() => void} open
 * @property {(frame: { type: string, [field: string]: any }) => void} frame
 * @property {(close: { code: number, reason: string, refusedStatus?: number }) => void} close
 */

export class Socket {
  #closed = false
  /** @type {number | undefined} */
  #refusedStatus = undefined
  /** @type {Set<ReturnType<typeof setTimeout>>} what waits to be sent again on this socket */
  #timers = new Set()

  /**
   * @param {{ WebSocket: WebSocketClass, url: string, headers?: Record<string, string>, listeners: SocketListeners }} options
   */
  constructor ({ WebSocket, url, headers, listeners }) {
    this.listeners = listeners
    this.socket = headers === undefined ? new WebSocket(url) : new WebSocket(url, { headers })
    this.socket.addEventListener('open', () => { if (!this.#closed) listeners.open() })
    this.socket.addEventListener('message', (/** @type {{ data: unknown }} */ event) => {
      if (this.#closed || typeof event.data !== 'string') return
      let frame
      try {
        frame = JSON.parse(event.data)
      } catch {
        return
      }
      if (typeof frame?.type === 'string') listeners.frame(frame)
    })
    this.socket.addEventListener('error', (/** @type {{ message?: unknown }} */ event) => {
      // ws: "Unexpected server response: 401" when the upgrade was refused.
      const status = /Unexpected server response: (\d{3})/.exec(String(event.message ?? ''))?.[1]
      if (status !== undefined) this.#refusedStatus = Number(status)
    })
    this.socket.addEventListener('close', (/** @type {{ code: number, reason: string }} */ event) => {
      this.#end(event.code, String(event.reason ?? ''))
    })
  }

  get open () {
    return !this.#closed && this.socket.readyState === openState
  }

  /** @param {object} frame */
  send (frame) {
    if (this.open) this.socket.send(JSON.stringify(frame))
  }

  /**
   * Runs `action` after `delayMs`, unless the socket closes first: a new socket sends
   * everything afresh.
   * @param {number} delayMs
   * @param {() => void} action
   */
  later (delayMs, action) {
    if (this.#closed) return
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      action()
    }, delayMs)
    this.#timers.add(timer)
  }

  /**
   * Closes it from this side; the close listener is told at once, not when the server answers.
   * @param {number} code
   * @param {string} reason
   */
  close (code, reason) {
    try {
      this.socket.close(code, reason)
    } catch { /* still connecting, in some implementations: it is dropped all the same */ }
    this.#end(code, reason)
  }

  /** @param {number} code @param {string} reason */
  #end (code, reason) {
    if (this.#closed) return
    this.#closed = true
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
    this.listeners.close(this.#refusedStatus === undefined ? { code, reason } : { code, reason, refusedStatus: this.#refusedStatus })
  }
}
