/**
 * The format between instances, in one place: every NOTIFY that Canopy sends on its one
 * channel, how it is encoded (with its fallback when a payload would be too large) and how
 * it is read back.
 */

/** The one NOTIFY channel of every topic: no LISTEN per topic, no identifier truncation. */
export const busChannel = 'canopy_bus'

/**
 * NOTIFY payloads must stay under 8000 bytes, counted in bytes; leave room for what the
 * database splices in: the first id (at most 20 digits) and the commit time (about 22 bytes).
 */
export const maxNotifyPayloadBytes = 7900

/**
 * Joins the first id and the commit time, which the database splices in: the commit time is
 * the statement's clock_timestamp() in epoch milliseconds, so another instance can tell how
 * long after the commit a message reached it (canopy_bus_lag_seconds).
 */
export const commitTimeField = ',"c":'

/** Events other than messages that every instance hears. */
export type BusEvent =
  | { kind: 'presence', topic: string, user: string, joined: boolean }
  | { kind: 'logout', sessionKey: string }
  /** These users' program sockets (a key's, a token's) close: a key revoked, a user or a bot's owner disabled. */
  | { kind: 'revoked', userIds: number[] }
  /** A private topic's members changed (src/access.ts): `role` null when the user is no longer one. */
  | { kind: 'members', topic: string, userId: number, user: string, role: 'owner' | 'member' | null, by: string, previous?: 'owner' | 'member' | null }

/** What a message's NOTIFY carries of it; the topic and the id come with the batch. */
export interface NotifiedMessage {
  author: string
  text: string
  /** Undefined when the message has none. */
  data?: unknown
  bot?: boolean
  at: Date
}

/**
 * One topic's messages of a batch, split around the first id and the commit time, which only
 * the database knows (it joins head + firstId + commitTimeField + commit time + tail):
 * `{"i":instance,"t":topic,"f":firstId,"c":commitMs,"m":[[author,text,at],…]}` (a message
 * with data or by a bot: `[author,text,at,data]`, `[author,text,at,data|null,1]`), or
 * `{"i","t","f","c","n":count}` when the messages do not fit in a payload — a hint to read
 * them from the table.
 */
export function encodeMessages (instanceId: string, topic: string, messages: readonly NotifiedMessage[]): { head: string, tail: string } {
  const head = `${senderPrefix(instanceId)}"t":${JSON.stringify(topic)},"f":`
  const full = `,"m":${JSON.stringify(messages.map(entryOf))}}`
  if (Buffer.byteLength(head) + Buffer.byteLength(full) <= maxNotifyPayloadBytes) return { head, tail: full }
  return { head, tail: `,"n":${messages.length}}` }
}

function entryOf (m: NotifiedMessage): unknown[] {
  const entry: unknown[] = [m.author, m.text, m.at.toISOString()]
  if (m.data === undefined && m.bot !== true) return entry
  entry.push(m.data ?? null)
  if (m.bot === true) entry.push(1)
  return entry
}

/** An event for every instance: `{"i":instance,"e":event}`. */
export function encodeEvent (instanceId: string, event: BusEvent): string {
  return `${senderPrefix(instanceId)}"e":${JSON.stringify(event)}}`
}

/** A message as a NOTIFY carries it: `data` and `bot` only when it has them. */
export interface HeardMessage { author: string, text: string, at: string, data?: unknown, bot?: true }

export type Notification =
  | { kind: 'messages', instanceId: string, topic: string, firstId: number, messages: HeardMessage[], committedAtMs: number | undefined }
  | { kind: 'hint', instanceId: string, topic: string, lastId: number }
  | { kind: 'event', instanceId: string, event: BusEvent }

/**
 * What every payload of this instance starts with: an instance skips its own notifications
 * (it delivered their messages at commit) without parsing them.
 */
export function senderPrefix (instanceId: string): string {
  return `{"i":${JSON.stringify(instanceId)},`
}

/** Reads a payload back; undefined when it is not one of ours. */
export function decodeNotification (payload: string): Notification | undefined {
  let note: { i?: unknown, t?: unknown, f?: unknown, c?: unknown, m?: unknown, n?: unknown, e?: unknown }
  try {
    note = JSON.parse(payload) as typeof note
  } catch {
    return undefined
  }
  if (typeof note !== 'object' || note === null || typeof note.i !== 'string') return undefined
  const instanceId = note.i
  if (typeof note.t === 'string' && typeof note.f === 'number') {
    if (Array.isArray(note.m)) {
      const messages = readMessages(note.m as unknown[])
      if (messages === undefined) return undefined
      // Without a commit time: from an instance of an older version.
      const committedAtMs = typeof note.c === 'number' ? note.c : undefined
      return { kind: 'messages', instanceId, topic: note.t, firstId: note.f, messages, committedAtMs }
    }
    if (typeof note.n === 'number') return { kind: 'hint', instanceId, topic: note.t, lastId: note.f + note.n - 1 }
    return undefined
  }
  if (typeof note.e === 'object' && note.e !== null) return { kind: 'event', instanceId, event: note.e as BusEvent }
  return undefined
}

/**
 * A payload's `[author, text, at]` triples, with data and bot as a 4th and 5th element when
 * there are some (an older instance sends triples only); undefined if one is anything else.
 */
function readMessages (entries: unknown[]): HeardMessage[] | undefined {
  const messages: HeardMessage[] = []
  for (const entry of entries) {
    if (!Array.isArray(entry) || entry.length < 3 || entry.length > 5) return undefined
    const [author, text, at, data, bot] = entry as unknown[]
    if (typeof author !== 'string' || typeof text !== 'string' || typeof at !== 'string') return undefined
    const message: HeardMessage = { author, text, at }
    if (data !== undefined && data !== null) message.data = data
    if (bot === 1) message.bot = true
    messages.push(message)
  }
  return messages
}
