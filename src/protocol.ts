/**
 * The wire protocol of /chat, defined once: frame types, error codes, close codes and the
 * validator of client frames. The endpoint, the tests and the page's documentation use it.
 */

export const topicPattern = /^[a-z0-9][a-z0-9_.-]{0,63}$/
export const defaultTopic = 'general'
export const maxRefChars = 64
/** `since` replays at most this many messages; more sets `truncated`. */
export const maxSinceMessages = 1000

export const CloseCode = {
  shuttingDown: 1001,
  binaryFrame: 1003,
  invalidUtf8: 1007,
  policy: 1008,
  frameTooLarge: 1009,
  tryAgainLater: 1013,
  loggedOut: 4401
} as const

export type ErrorCode =
  | 'bad_json'
  | 'bad_request'
  | 'unknown_type'
  | 'bad_topic'
  | 'too_long'
  | 'rate_limited'
  | 'unavailable'

/** A stored chat message, exactly as it travels: in live frames, history and HTTP bodies. */
export interface MessageFrame {
  type: 'message'
  topic: string
  id: number
  author: string
  text: string
  at: string
}

export type ServerFrame =
  | MessageFrame
  | { type: 'subscribed', topic: string, history: MessageFrame[], truncated?: true }
  | { type: 'unsubscribed', topic: string }
  | { type: 'ack', ref: string, id: number, at: string }
  | { type: 'joined', topic: string, user: string }
  | { type: 'left', topic: string, user: string }
  | { type: 'error', code: ErrorCode, message: string, ref?: string }

export type ClientFrame =
  | { type: 'subscribe', topic: string, since?: number }
  | { type: 'unsubscribe', topic: string }
  | { type: 'publish', topic: string, text: string, ref: string }

export interface FrameError {
  type: 'error'
  code: ErrorCode
  message: string
  ref?: string
}

export function frameError (code: ErrorCode, message: string, ref?: string): FrameError {
  return ref === undefined ? { type: 'error', code, message } : { type: 'error', code, message, ref }
}

export function isValidTopic (topic: unknown): topic is string {
  return typeof topic === 'string' && topicPattern.test(topic)
}

export function isValidRef (ref: unknown): ref is string {
  return typeof ref === 'string' && ref.length >= 1 && ref.length <= maxRefChars
}

/** Unicode code points, which is what MAX_MESSAGE_CHARS counts. */
export function codePointLength (text: string): number {
  let length = 0
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    // A high surrogate followed by a low one is one code point.
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) i++
    }
    length++
  }
  return length
}

/**
 * Checks a message text against the rules shared by WebSocket and HTTP publishing;
 * returns undefined when it is fine.
 */
export function checkText (text: string, maxChars: number): { code: ErrorCode, message: string } | undefined {
  if (text.trim() === '') return { code: 'too_long', message: 'text is empty' }
  if (codePointLength(text) > maxChars) return { code: 'too_long', message: `text is over ${maxChars} characters` }
  // Postgres text can hold neither NUL nor half a surrogate pair.
  if (text.includes('\u0000')) return { code: 'bad_request', message: 'text contains a NUL character' }
  if (!text.isWellFormed()) return { code: 'bad_request', message: 'text is not well-formed Unicode' }
  return undefined
}

/** Parses and validates one client text frame; a FrameError says what is wrong with it. */
export function parseClientFrame (data: string, maxChars: number): ClientFrame | FrameError {
  let value: unknown
  try {
    value = JSON.parse(data)
  } catch {
    return frameError('bad_json', 'the frame is not valid JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return frameError('bad_request', 'a frame is a JSON object')
  }
  const frame = value as Record<string, unknown>
  const ref = isValidRef(frame.ref) ? frame.ref : undefined
  switch (frame.type) {
    case 'subscribe': {
      if (!isValidTopic(frame.topic)) return badTopic(frame.topic)
      const since = frame.since
      if (since === undefined) return { type: 'subscribe', topic: frame.topic }
      if (typeof since !== 'number' || !Number.isSafeInteger(since) || since < 0) {
        return frameError('bad_request', 'since is a message id: an integer ≥ 0')
      }
      return { type: 'subscribe', topic: frame.topic, since }
    }
    case 'unsubscribe':
      if (!isValidTopic(frame.topic)) return badTopic(frame.topic)
      return { type: 'unsubscribe', topic: frame.topic }
    case 'publish': {
      if (ref === undefined) return frameError('bad_request', `ref is required: a string of 1 to ${maxRefChars} characters`)
      if (!isValidTopic(frame.topic)) return badTopic(frame.topic, ref)
      if (typeof frame.text !== 'string') return frameError('bad_request', 'text is required: a string', ref)
      const problem = checkText(frame.text, maxChars)
      if (problem !== undefined) return frameError(problem.code, problem.message, ref)
      return { type: 'publish', topic: frame.topic, text: frame.text, ref }
    }
    case undefined:
      return frameError('bad_request', 'type is required', ref)
    default:
      return frameError('unknown_type', `unknown frame type ${JSON.stringify(frame.type).slice(0, 80)}`, ref)
  }
}

function badTopic (topic: unknown, ref?: string): FrameError {
  if (topic === undefined) return frameError('bad_request', 'topic is required', ref)
  return frameError('bad_topic', `a topic name matches ${String(topicPattern)}`, ref)
}
