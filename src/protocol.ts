import { FormatRegistry, Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'

/**
 * The protocol of Canopy, defined once: the frames of /chat and the bodies of the HTTP API
 * as TypeBox schemas, the validators compiled from them, the error and close codes, and the
 * constants the page imports (served as /protocol.js, see pageModule).
 */

export const topicPattern = /^[a-z0-9][a-z0-9_.-]{0,63}$/
export const defaultTopic = 'general'
export const namePattern = /^[A-Za-z0-9_.-]{3,32}$/
export const minPasswordChars = 8
export const maxPasswordChars = 256
export const maxRefChars = 64
/** `since` replays at most this many messages; more sets `truncated`. */
export const maxSinceMessages = 1000
/** …and at most this many bytes of encoded messages (the one that crosses it is the last in). */
export const maxSinceBytes = 256 * 1024
/** Messages per page of GET /api/topics/:topic/messages at most. */
export const maxPageSize = 100
/** Topics one /chat connection may be subscribed to at once; the next is refused. */
export const maxTopicsPerConnection = 100
/** JSON nested deeper than this is refused as `bad_json` before anything reads it. */
export const maxJsonDepth = 32
/** The longest signed token an `auth` frame may carry. */
export const maxTokenChars = 8192

export const CloseCode = {
  shuttingDown: 1001,
  binaryFrame: 1003,
  invalidUtf8: 1007,
  policy: 1008,
  frameTooLarge: 1009,
  tryAgainLater: 1013,
  loggedOut: 4401
} as const

/** Every WebSocket error code, with the HTTP status the same refusal has over HTTP. */
export const statusByErrorCode = {
  bad_json: 400,
  bad_request: 400,
  unknown_type: 400,
  bad_topic: 400,
  too_long: 400,
  /** A private topic the user is not a member of (docs/protocol.md, "Private topics and direct messages"). */
  forbidden: 403,
  rate_limited: 429,
  unavailable: 503
} as const

export type ErrorCode = keyof typeof statusByErrorCode
export const errorCodes = Object.keys(statusByErrorCode) as ErrorCode[]

/**
 * What Postgres can store in a text column: no NUL and no half of a surrogate pair. A value
 * that breaks it is refused before it reaches the database, whatever field it is in.
 */
export function isStorable (value: string): boolean {
  return !value.includes('\u0000') && value.isWellFormed()
}

/** A length in characters is in Unicode code points, as MAX_MESSAGE_CHARS counts: an emoji is one. */
function hasCharacters (value: string, min: number, max: number): boolean {
  const length = codePointLength(value)
  return length >= min && length <= max
}
const isRef = (value: string): boolean => isStorable(value) && hasCharacters(value, 1, maxRefChars)
const isPassword = (value: string): boolean => hasCharacters(value, minPasswordChars, maxPasswordChars)
FormatRegistry.Set('ref', isRef)
FormatRegistry.Set('password', isPassword)

/**
 * Whether any string of a parsed JSON value, key or value, at any depth, is not storable:
 * such a frame or body is refused whole (`bad_request`), whichever field it is in. Walked
 * without recursion: an HTTP body may nest deeper than the stack would like.
 */
export function holdsUnstorable (value: unknown): boolean {
  const pending: unknown[] = [value]
  while (pending.length > 0) {
    const next = pending.pop()
    if (typeof next === 'string') {
      if (!isStorable(next)) return true
    } else if (Array.isArray(next)) {
      for (const inner of next) pending.push(inner)
    } else if (typeof next === 'object' && next !== null) {
      for (const [key, inner] of Object.entries(next)) {
        if (!isStorable(key)) return true
        pending.push(inner)
      }
    }
  }
  return false
}

// ---- Fields ----

export const Topic = Type.String({ pattern: topicPattern.source })
/** The client's id for a message: the same rule for WebSocket and HTTP. */
export const Ref = Type.String({ format: 'ref' })
/** A message id given by a client: a positive integer below 2^53. */
export const MessageId = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })

// ---- Client → server frames ----

export const SubscribeFrame = Type.Object({
  type: Type.Literal('subscribe'),
  topic: Topic,
  since: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }))
})
export const UnsubscribeFrame = Type.Object({ type: Type.Literal('unsubscribe'), topic: Topic })
/**
 * A program's JSON payload: any JSON value but null, at most maxDataBytes as compact UTF-8
 * JSON (checkPublish). Stored as jsonb: delivered equal, though an object's keys may come
 * back from history in another order.
 */
export const Data = Type.Unknown()
/** `data` at most, in bytes of compact UTF-8 JSON (`JSON.stringify`). */
export const maxDataBytes = 16_384
export const PublishFrame = Type.Object({
  type: Type.Literal('publish'),
  topic: Topic,
  /** With `data`, or alone; a publish needs one of them (checkPublish). */
  text: Type.Optional(Type.String()),
  data: Type.Optional(Data),
  ref: Ref
})
/** A new token for a socket opened with one, before it expires (docs/protocol.md, "Programs"); it names no topic. */
export const AuthFrame = Type.Object({ type: Type.Literal('auth'), token: Type.String({ minLength: 1, maxLength: maxTokenChars }) })
export const ClientFrame = Type.Union([SubscribeFrame, UnsubscribeFrame, PublishFrame, AuthFrame])
export type ClientFrame = Static<typeof ClientFrame>

// ---- Server → client frames ----

/** A stored chat message, exactly as it travels: in live frames, history and HTTP bodies. */
export const MessageFrame = Type.Object({
  type: Type.Literal('message'),
  topic: Type.String(),
  id: Type.Integer(),
  author: Type.String(),
  /** "" for a message of `data` alone. */
  text: Type.String(),
  /** Present only when the message has one. */
  data: Type.Optional(Data),
  /** Present (true) only when the author is a bot. */
  bot: Type.Optional(Type.Literal(true)),
  at: Type.String()
})
export type MessageFrame = Static<typeof MessageFrame>

export const SubscribedFrame = Type.Object({
  type: Type.Literal('subscribed'),
  topic: Type.String(),
  history: Type.Array(MessageFrame),
  /** Who is in the topic now, on any instance, the subscriber's own user included, sorted. */
  present: Type.Array(Type.String()),
  truncated: Type.Optional(Type.Literal(true))
})
export const UnsubscribedFrame = Type.Object({
  type: Type.Literal('unsubscribed'),
  topic: Type.String(),
  /** Set when the server unsubscribed the connection itself: `removed`, the user is no longer a member of the private topic. */
  reason: Type.Optional(Type.Literal('removed'))
})
/** The user was added to a private topic (or a direct-message topic was started with them), by `by`. */
export const AddedFrame = Type.Object({ type: Type.Literal('added'), topic: Type.String(), by: Type.String() })
export const AckFrame = Type.Object({ type: Type.Literal('ack'), ref: Type.String(), id: Type.Integer(), at: Type.String() })
export const JoinedFrame = Type.Object({ type: Type.Literal('joined'), topic: Type.String(), user: Type.String() })
export const LeftFrame = Type.Object({ type: Type.Literal('left'), topic: Type.String(), user: Type.String() })
export const ErrorFrame = Type.Object({
  type: Type.Literal('error'),
  code: Type.Union(errorCodes.map((code) => Type.Literal(code))),
  message: Type.String(),
  ref: Type.Optional(Type.String()),
  /** The topic the refusal is about: always with `forbidden` (a subscribe, `since`, publish or unsubscribe of a private topic). */
  topic: Type.Optional(Type.String()),
  retryAfterMs: Type.Optional(Type.Integer({ minimum: 0 }))
})
export const ServerFrame = Type.Union([MessageFrame, SubscribedFrame, UnsubscribedFrame, AddedFrame, AckFrame, JoinedFrame, LeftFrame, ErrorFrame])
export type ServerFrame = Static<typeof ServerFrame>
export type SubscribedFrame = Static<typeof SubscribedFrame>
export type ErrorFrame = Static<typeof ErrorFrame>

// ---- HTTP bodies ----

export const User = Type.Object({ id: Type.Integer(), name: Type.String() })
export const UserBody = Type.Object({ user: User })
/** GET /api/me: the user, with whether they are an administrator (read fresh on every call). */
export const MeBody = Type.Object({ user: Type.Object({ id: Type.Integer(), name: Type.String(), admin: Type.Boolean() }), wsTicket: Type.String() })
/** Registration: the rules a name and a password must keep. */
export const Credentials = Type.Object({
  username: Type.String({ pattern: namePattern.source }),
  password: Type.String({ format: 'password' })
}, { additionalProperties: false })
/** Login takes any name and password within sane bounds: a wrong one is a 401, not a 400. */
export const LoginBody = Type.Object({
  username: Type.String({ minLength: 1, maxLength: 64 }),
  password: Type.String({ minLength: 1, maxLength: 1024 })
}, { additionalProperties: false })
/**
 * Logout: no body, `{}`, or `{"everywhere":true}` to end every session of the user. Fastify
 * validates a missing body as null.
 */
export const LogoutBody = Type.Union([Type.Null(), Type.Object({
  everywhere: Type.Optional(Type.Boolean())
}, { additionalProperties: false })])
/** POST /api/password: the current password (a wrong one is 401, not 400) and the new one, by the rules of register. */
export const PasswordChange = Type.Object({
  current: Type.String({ minLength: 1, maxLength: 1024 }),
  new: Type.String({ format: 'password' })
}, { additionalProperties: false })
/** Users per page of GET /api/admin/users. */
export const usersPageSize = 100
/** GET /api/admin/users?after=NAME: the users after that name (without regard to case); none, from the first. */
export const UsersQuery = Type.Object({ after: Type.Optional(Type.String({ maxLength: 64 })) })
export const UserSummary = Type.Object({ name: Type.String(), admin: Type.Boolean(), disabled: Type.Boolean(), createdAt: Type.String() })
export const UsersBody = Type.Object({ users: Type.Array(UserSummary) })
export const UserNameParams = Type.Object({ name: Type.String() })
export const TopicParams = Type.Object({ topic: Type.String() })
export const PageQuery = Type.Object({
  before: Type.Optional(MessageId),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: maxPageSize }))
})
export const PublishBody = Type.Object({ text: Type.Optional(Type.String()), data: Type.Optional(Data), ref: Type.Optional(Ref) })
export const MessagesBody = Type.Object({ messages: Type.Array(MessageFrame) })
export const PresentBody = Type.Object({ present: Type.Array(Type.String()) })
export const Visibility = Type.Union([Type.Literal('public'), Type.Literal('private')])
export const Role = Type.Union([Type.Literal('owner'), Type.Literal('member')])
export const TopicSummary = Type.Object({
  name: Type.String(),
  lastId: Type.Integer(),
  lastAt: Type.String(),
  unread: Type.Integer(),
  visibility: Visibility,
  /** Only on a direct-message topic, with its members' names. */
  kind: Type.Optional(Type.Literal('dm')),
  members: Type.Optional(Type.Array(Type.String()))
})
export const TopicsBody = Type.Object({ topics: Type.Array(TopicSummary) })
/** POST /api/topics: a topic created on purpose. The name is checked by the route, for its own code (`bad_topic`). */
export const NewTopicBody = Type.Object({ name: Type.String(), visibility: Visibility })
export const CreatedTopicBody = Type.Object({ topic: Type.Object({ name: Type.String(), visibility: Visibility, role: Role }) })
export const MemberParams = Type.Object({ topic: Type.String(), name: Type.String() })
export const MemberBody = Type.Object({ role: Role })
export const MembersBody = Type.Object({
  visibility: Visibility,
  members: Type.Array(Type.Object({ name: Type.String(), role: Role }))
})
/** Other people a direct-message topic may have besides the one who starts it. */
export const maxDirectMessageOthers = 8
/** POST /api/dm: the others, by name; the caller's own name among them is ignored, and so is a name given twice. */
export const DirectMessageBody = Type.Object({
  with: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: maxDirectMessageOthers + 1 })
})
export const DirectMessageTopicBody = Type.Object({
  topic: Type.Object({ name: Type.String(), visibility: Type.Literal('private'), kind: Type.Literal('dm'), members: Type.Array(Type.String()) })
})
export const ReadBody = Type.Object({ id: MessageId })
/**
 * GET /api/topics lists at most maxJoinedTopics of the user's joined topics, then at most
 * maxListedTopics others; unread counts stop at maxUnreadCount.
 */
export const maxListedTopics = 100
export const maxJoinedTopics = 200
export const maxUnreadCount = 1000
export const MessageBody = Type.Object({ message: MessageFrame })
/** POST /api/bots: the new bot's name, by the name rule (checked by the route, for its words). */
export const NewBotBody = Type.Object({ name: Type.String() }, { additionalProperties: false })
/** The new bot, and its key: shown this once, never stored. */
export const CreatedBotBody = Type.Object({ bot: Type.Object({ name: Type.String(), owner: Type.String() }), key: Type.String() })
export const BotsBody = Type.Object({ bots: Type.Array(Type.Object({ name: Type.String(), createdAt: Type.String() })) })
/** Every HTTP error: a stable code and a sentence for people. */
export const HttpErrorBody = Type.Object({
  error: Type.String(),
  message: Type.String(),
  retryAfterMs: Type.Optional(Type.Integer({ minimum: 0 }))
})

/**
 * Formats the schemas use beyond JSON Schema's own, for Fastify's validator of HTTP bodies
 * (the WebSocket's compiled validators read them from TypeBox's registry).
 */
export const ajvFormats = { ref: isRef, password: isPassword }

// ---- Validation of client frames ----

export function errorFrame (code: ErrorCode, message: string, ref?: string, topic?: string): ErrorFrame {
  const frame: ErrorFrame = ref === undefined ? { type: 'error', code, message } : { type: 'error', code, message, ref }
  if (topic !== undefined) frame.topic = topic
  return frame
}

export function isValidTopic (topic: unknown): topic is string {
  return typeof topic === 'string' && topicPattern.test(topic)
}

const frameCheckers = {
  subscribe: TypeCompiler.Compile(SubscribeFrame),
  unsubscribe: TypeCompiler.Compile(UnsubscribeFrame),
  publish: TypeCompiler.Compile(PublishFrame),
  auth: TypeCompiler.Compile(AuthFrame)
}
const refChecker = TypeCompiler.Compile(Ref)

/** What each field must be, in words, for the error a client gets. */
const fieldRules: Record<string, string> = {
  topic: `a topic name matches ${String(topicPattern)}`,
  since: 'since is a message id: an integer ≥ 0',
  text: 'text is a string',
  ref: `ref is required: a string of 1 to ${maxRefChars} characters, without NUL or half a surrogate pair`,
  token: `token is required: a signed token of at most ${maxTokenChars} characters`
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
 * returns undefined when it is fine. Whether it is storable was checked before, with every
 * other string of the frame or body (holdsUnstorable).
 */
export function checkText (text: string, maxChars: number): { code: ErrorCode, message: string } | undefined {
  // The code is the one docs/protocol.md (4. Errors) gives; the words say what is really wrong.
  if (text.trim() === '') return { code: 'too_long', message: 'text is empty: write something first' }
  if (codePointLength(text) > maxChars) return { code: 'too_long', message: `text is over ${maxChars} characters` }
  return undefined
}

/**
 * Checks a publish's text and data (WebSocket and HTTP alike): one of them at least; text
 * by checkText unless it is empty beside data; data not null and at most maxDataBytes.
 * Whether their strings are storable was checked before (holdsUnstorable). The size is
 * only measured for a publish that has data: a text-only publish costs what it did.
 */
export function checkPublish (text: string | undefined, data: unknown, maxChars: number): { code: ErrorCode, message: string } | undefined {
  if (data === undefined) {
    if (text === undefined) return { code: 'bad_request', message: 'a publish needs text, data or both' }
    return checkText(text, maxChars)
  }
  if (data === null) return { code: 'bad_request', message: 'data is any JSON value but null; leave it out instead' }
  const bytes = Buffer.byteLength(JSON.stringify(data))
  if (bytes > maxDataBytes) return { code: 'bad_request', message: `data is ${bytes} bytes of JSON, over ${maxDataBytes}` }
  if (text === undefined || text === '') return undefined
  return checkText(text, maxChars)
}

/**
 * Whether a parsed JSON value nests arrays and objects deeper than `limit`. It looks no
 * deeper than that, so a hostile frame costs no more than an ordinary one.
 */
export function nestsDeeperThan (value: unknown, limit: number): boolean {
  if (typeof value !== 'object' || value === null) return false
  if (limit === 0) return true
  for (const inner of Array.isArray(value) ? value : Object.values(value)) {
    if (nestsDeeperThan(inner, limit - 1)) return true
  }
  return false
}

/** Parses and validates one client text frame; an error frame says what is wrong with it. */
export function parseClientFrame (data: string, maxChars: number): ClientFrame | ErrorFrame {
  let value: unknown
  try {
    value = JSON.parse(data)
  } catch {
    return errorFrame('bad_json', 'the frame is not valid JSON')
  }
  if (nestsDeeperThan(value, maxJsonDepth)) return errorFrame('bad_json', `the frame nests deeper than ${maxJsonDepth} levels`)
  if (holdsUnstorable(value)) {
    const ref = typeof value === 'object' && value !== null ? (value as { ref?: unknown }).ref : undefined
    return errorFrame('bad_request', 'a field holds a NUL character or half a surrogate pair', refChecker.Check(ref) ? ref : undefined)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return errorFrame('bad_request', 'a frame is a JSON object')
  }
  const frame = value as Record<string, unknown>
  const ref = refChecker.Check(frame.ref) ? frame.ref : undefined
  const type = frame.type
  if (type === undefined) return errorFrame('bad_request', 'type is required', ref)
  if (type !== 'subscribe' && type !== 'unsubscribe' && type !== 'publish' && type !== 'auth') {
    const shown = typeof type === 'string' ? JSON.stringify(type.slice(0, 64)) : `of type ${typeof type}`
    return errorFrame('unknown_type', `unknown frame type ${shown}`, ref)
  }
  const checker = frameCheckers[type]
  if (!checker.Check(frame)) {
    // A publish is answered with its ref whenever the ref is usable; without one it cannot be.
    if (type === 'publish' && ref === undefined) return errorFrame('bad_request', fieldRules.ref ?? 'ref is required', ref)
    const field = checker.Errors(frame).First()?.path.split('/')[1] ?? ''
    if (field === 'topic' && frame.topic !== undefined) return errorFrame('bad_topic', fieldRules.topic ?? 'bad topic', ref)
    return errorFrame('bad_request', frame[field] === undefined && field !== '' ? `${field} is required` : fieldRules[field] ?? 'the frame has a field it cannot have', ref)
  }
  const parsed = frame as ClientFrame
  if (parsed.type === 'publish') {
    const problem = checkPublish(parsed.text, parsed.data, maxChars)
    if (problem !== undefined) return errorFrame(problem.code, problem.message, ref)
  }
  return parsed
}

/** The constants the page needs, from this file and the running configuration. */
export function pageConstants (limits: { maxMessageChars: number, historyLimit: number }): Record<string, unknown> {
  return {
    topicPattern,
    defaultTopic,
    namePattern,
    minPasswordChars,
    maxPasswordChars,
    maxRefChars,
    maxMessageChars: limits.maxMessageChars,
    historyLimit: limits.historyLimit,
    maxSinceMessages,
    maxPageSize,
    maxTopicsPerConnection,
    maxListedTopics,
    maxJoinedTopics,
    maxUnreadCount,
    CloseCode,
    errorCodes
  }
}

/** pageConstants as an ES module: what GET /protocol.js serves to the page. */
export function pageModule (limits: { maxMessageChars: number, historyLimit: number }): string {
  const lines = ['// Generated by the server from src/protocol.ts and its configuration: do not edit.']
  for (const [name, value] of Object.entries(pageConstants(limits))) {
    const literal = value instanceof RegExp ? String(value) : JSON.stringify(value)
    lines.push(`export const ${name} = ${literal}`)
  }
  return lines.join('\n') + '\n'
}
