/** The HTTP API of Canopy: JSON in, JSON out, errors as ApiError with the server's message. */

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the server could not be reached
   * @param {string} code the `error` field of the body
   * @param {string} message the `message` field of the body, meant for people
   */
  constructor (status, code, message) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
  }
}

/**
 * @param {'GET' | 'POST' | 'PUT' | 'DELETE'} method
 * @param {string} path
 * @param {unknown} [body]
 */
export async function request (method, path, body) {
  /** @type {RequestInit} */
  const init = { method, credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json' } }
  if (body !== undefined) {
    init.headers = { ...init.headers, 'content-type': 'application/json' }
    init.body = JSON.stringify(body)
  }
  let response
  try {
    response = await fetch(path, init)
  } catch {
    throw new ApiError(0, 'network', 'Canopy cannot be reached right now. Check your connection and try again.')
  }
  if (response.status === 204) return undefined
  let data
  try {
    data = await response.json()
  } catch {
    data = undefined
  }
  if (!response.ok) {
    const message = typeof data?.message === 'string' && data.message !== ''
      ? data.message
      : `The server answered ${response.status} ${response.statusText}`.trim()
    throw new ApiError(response.status, typeof data?.error === 'string' ? data.error : 'http_error', message)
  }
  return data
}

/** @returns {Promise<{ user: { id: number, name: string, admin?: true }, wsTicket: string }>} */
export const me = () => request('GET', '/api/me')

/** @param {'login' | 'register'} action */
export const authenticate = (action, username, password) => request('POST', `/api/${action}`, { username, password })

export const logout = () => request('POST', '/api/logout')

/**
 * An older page of a topic's history, oldest first.
 * @returns {Promise<{ messages: Array<{ id: number, topic: string, author: string, text: string, at: string }> }>}
 */
export const olderMessages = (topic, before, limit) =>
  request('GET', `/api/topics/${encodeURIComponent(topic)}/messages?before=${before}&limit=${limit}`)

/**
 * The reader's topics (every private topic and direct message among them), then the others
 * with messages, most recently active first, with the reader's unread count.
 * @returns {Promise<{ topics: Array<{ name: string, lastId: number, lastAt: string, unread: number,
 *   visibility?: 'public' | 'private', kind?: 'dm', members?: string[] }> }>}
 */
export const topicSummaries = () => request('GET', '/api/topics')

/** The reader has read `topic` up to message `id` (the server never moves a position back). */
export const markRead = (topic, id) => request('PUT', `/api/topics/${encodeURIComponent(topic)}/read`, { id })

const topicPath = (topic) => `/api/topics/${encodeURIComponent(topic)}`

/**
 * Creates a topic, of which the reader is the owner.
 * @param {string} name @param {'private' | 'public'} visibility
 * @returns {Promise<{ topic: { name: string, visibility: 'private' | 'public', role: 'owner' } }>}
 */
export const createTopic = (name, visibility) => request('POST', '/api/topics', { name, visibility })

/**
 * A topic's members, by name (none for a public topic).
 * @returns {Promise<{ visibility: 'private' | 'public', members: Array<{ name: string, role: 'owner' | 'member' }> }>}
 */
export const topicMembers = (topic) => request('GET', `${topicPath(topic)}/members`)

/** Adds `name` to a private topic, or changes their role. @param {'owner' | 'member'} role */
export const setMember = (topic, name, role) => request('PUT', `${topicPath(topic)}/members/${encodeURIComponent(name)}`, { role })

/** Removes `name` from a private topic: the reader's own name leaves it. */
export const removeMember = (topic, name) => request('DELETE', `${topicPath(topic)}/members/${encodeURIComponent(name)}`)

/**
 * The direct message of the reader and these people, started if it was not.
 * @param {string[]} names
 * @returns {Promise<{ topic: { name: string, visibility: 'private', kind: 'dm', members: string[] } }>}
 */
export const directMessage = (names) => request('POST', '/api/dm', { with: names })

/** Changes the reader's password; their other sessions end. */
export const changePassword = (current, next) => request('POST', '/api/password', { current, new: next })

/**
 * A page of users for an administrator, by name, after `after`.
 * @returns {Promise<{ users: Array<{ name: string, admin: boolean, disabled: boolean, createdAt: string }> }>}
 */
export const adminUsers = (after) => request('GET', `/api/admin/users${after === undefined ? '' : `?after=${encodeURIComponent(after)}`}`)

/** Disables an account (its sessions end, its logins are refused) or enables it again. @param {'disable' | 'enable'} action */
export const setUserEnabled = (name, action) => request('POST', `/api/admin/users/${encodeURIComponent(name)}/${action}`)

/** An administrator creates an account. */
export const createAccount = (username, password) => request('POST', '/api/admin/users', { username, password })
