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
 * @param {'GET' | 'POST' | 'PUT'} method
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

/** @returns {Promise<{ user: { id: number, name: string }, wsTicket: string }>} */
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
 * Every topic with messages, most recently active first, with the reader's unread count.
 * @returns {Promise<{ topics: Array<{ name: string, lastId: number, lastAt: string, unread: number }> }>}
 */
export const topicSummaries = () => request('GET', '/api/topics')

/** The reader has read `topic` up to message `id` (the server never moves a position back). */
export const markRead = (topic, id) => request('PUT', `/api/topics/${encodeURIComponent(topic)}/read`, { id })
