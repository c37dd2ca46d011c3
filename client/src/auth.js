// @ts-check

/**
 * How a client proves who it is when it opens /chat, in the three ways docs/protocol.md
 * admits: a session (the page, or a program holding a session cookie), whose ticket comes
 * fresh from GET /api/me before each socket; a bot's key, sent as `Authorization: Bearer`
 * (which only a WebSocket implementation that takes headers can send, as `ws` does); or an
 * application's token (a JWT), sent as `?token=` and replaced in band before it expires.
 */

/**
 * @typedef {object} SessionAuth
 * @property {'session'} kind
 * @property {() => Promise<string>} [ticket] the session's wsTicket; by default GET /api/me with the session's cookie
 * @property {string} [cookie] the session's cookie, for a program (a browser sends its own)
 */
/**
 * @typedef {object} KeyAuth
 * @property {'key'} kind
 * @property {string} key a bot's key
 */
/**
 * @typedef {object} TokenAuth
 * @property {'token'} kind
 * @property {() => string | Promise<string>} token a valid token each time it is called: before each socket, and before the token in use expires
 */
/** @typedef {SessionAuth | KeyAuth | TokenAuth} Auth */

/** The subset of fetch this library uses: the global fetch of a browser or of Node 18+. */
/** @typedef {(url: string, init?: { method?: string, headers?: Record<string, string>, body?: string, credentials?: 'include' }) => Promise<FetchResponse>} Fetch */
/**
 * @typedef {object} FetchResponse
 * @property {number} status
 * @property {boolean} ok
 * @property {() => Promise<any>} json
 * @property {{ get(name: string): string | null, getSetCookie?(): string[] }} headers
 */

/** The server does not accept these credentials (any more): no point trying again with them. */
export class Unauthorized extends Error {
  /** @param {string} message */
  constructor (message) {
    super(message)
    this.name = 'Unauthorized'
  }
}

/**
 * The URL of /chat on the server at `baseUrl` (http(s) or ws(s)), with its query.
 * @param {string} baseUrl
 * @param {Record<string, string>} query
 */
export function chatUrl (baseUrl, query) {
  const url = new URL('/chat', baseUrl)
  url.protocol = url.protocol === 'https:' || url.protocol === 'wss:' ? 'wss:' : 'ws:'
  url.search = new URLSearchParams(query).toString()
  return url.toString()
}

/** @param {string} baseUrl @param {string} path */
function httpUrl (baseUrl, path) {
  const url = new URL(path, baseUrl)
  if (url.protocol === 'ws:' || url.protocol === 'wss:') url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:'
  return url.toString()
}

/**
 * What to open the next socket with: the query (ticket or token) and the headers.
 * Throws Unauthorized when the server says the credentials are no good.
 * @param {Auth} auth
 * @param {{ url: string, fetch: Fetch }} server
 * @returns {Promise<{ query: Record<string, string>, headers: Record<string, string> | undefined, token?: string }>}
 */
export async function credentials (auth, server) {
  switch (auth.kind) {
    case 'key':
      return { query: {}, headers: { authorization: `Bearer ${auth.key}` } }
    case 'token': {
      const token = await auth.token()
      return { query: { token }, headers: undefined, token }
    }
    default: {
      const ticket = auth.ticket === undefined ? await sessionTicket(auth, server) : await auth.ticket()
      return { query: { ticket }, headers: auth.cookie === undefined ? undefined : { cookie: auth.cookie } }
    }
  }
}

/**
 * A fresh wsTicket from GET /api/me. A 401 means the session is gone.
 * @param {SessionAuth} auth
 * @param {{ url: string, fetch: Fetch }} server
 */
async function sessionTicket (auth, server) {
  const response = await server.fetch(httpUrl(server.url, '/api/me'), {
    credentials: 'include',
    headers: auth.cookie === undefined ? {} : { cookie: auth.cookie }
  })
  if (response.status === 401) throw new Unauthorized('the session has ended')
  if (!response.ok) throw new Error(`GET /api/me answered ${response.status}`)
  const body = await response.json()
  if (typeof body?.wsTicket !== 'string') throw new Error('GET /api/me gave no wsTicket')
  return body.wsTicket
}

/**
 * Logs in with a name and password (POST /api/login) and returns a session for a program
 * to connect with: its cookie, kept in memory only.
 * @param {string} url the server's base URL
 * @param {{ username: string, password: string }} login
 * @param {{ fetch?: Fetch }} [options]
 * @returns {Promise<SessionAuth>}
 */
export async function sessionLogin (url, { username, password }, { fetch = globalThis.fetch } = {}) {
  const response = await fetch(httpUrl(url, '/api/login'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password })
  })
  if (response.status === 401) throw new Unauthorized('wrong name or password')
  if (!response.ok) throw new Error(`POST /api/login answered ${response.status}`)
  const setCookies = response.headers.getSetCookie?.() ?? [response.headers.get('set-cookie') ?? '']
  const cookie = setCookies.map((line) => line.split(';')[0]).filter((pair) => pair !== '').join('; ')
  return { kind: 'session', cookie }
}

/**
 * When a JWT expires (its `exp`), in ms since the epoch; undefined when it cannot be read.
 * The signature is the server's business: this only decides when to fetch a new one.
 * @param {string} token
 */
export function tokenExpiresAtMs (token) {
  try {
    const payload = token.split('.')[1] ?? ''
    const json = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/')))
    return typeof json?.exp === 'number' ? json.exp * 1000 : undefined
  } catch {
    return undefined
  }
}

/** A token is replaced when this share of its remaining life is gone… */
const refreshAtShare = 0.75
/** …and at least this long before it expires. */
const refreshMarginMs = 10_000
/** A token that could not be fetched is asked for again after this. */
const refreshRetryMs = 5_000

/**
 * Replaces the token of an open socket before it expires, with `{"type":"auth","token"}`.
 * The server closes a socket whose token expired with 4401; a token that cannot be fetched
 * in time lets that happen.
 */
export class TokenRefresh {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #timer = undefined
  /** Counts the stops: a refresh begun before one sends nothing. */
  #stops = 0

  /**
   * @param {TokenAuth} auth
   * @param {(frame: { type: 'auth', token: string }) => void} send
   * @param {() => number} [now]
   */
  constructor (auth, send, now = Date.now) {
    this.auth = auth
    this.send = send
    this.now = now
  }

  /** The socket opened with `token` (or was sent it): replace it before it expires. @param {string} token */
  start (token) {
    const expiresAtMs = tokenExpiresAtMs(token)
    const leftMs = (expiresAtMs ?? 0) - this.now()
    if (expiresAtMs === undefined || leftMs <= 0) return
    this.#later(Math.max(0, Math.min(leftMs * refreshAtShare, leftMs - refreshMarginMs)), expiresAtMs)
  }

  /** The socket is gone: nothing more is sent. */
  stop () {
    this.#stops += 1
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  /** @param {number} delayMs @param {number} expiresAtMs */
  #later (delayMs, expiresAtMs) {
    clearTimeout(this.#timer)
    const stops = this.#stops
    this.#timer = setTimeout(() => { void this.#refresh(expiresAtMs, stops) }, delayMs)
  }

  /** @param {number} expiresAtMs @param {number} stops */
  async #refresh (expiresAtMs, stops) {
    let token
    try {
      token = await this.auth.token()
    } catch {
      if (stops === this.#stops && this.now() < expiresAtMs) this.#later(refreshRetryMs, expiresAtMs)
      return
    }
    if (stops !== this.#stops) return
    this.send({ type: 'auth', token })
    if (stops === this.#stops) this.start(token)
  }
}
