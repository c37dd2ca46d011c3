import { withinReply, type History } from './message-store.js'
import { maxSinceBytes, maxSinceMessages, type MessageFrame } from './protocol.js'

/**
 * The recent messages the topic bus keeps of each topic it has subscribers for, so that a
 * later subscriber's history (and a catch-up they cover) needs no read. Every message
 * delivered here passes through `add`, so a topic's kept messages are always its latest.
 * Two budgets bound the memory: `maxBytes` over all topics, and `maxBytesPerUser` for the
 * topics kept for one user (the user whose subscribe first made the topic kept here, until
 * the topic is forgotten). A topic past either is not kept: its histories are read from the
 * table, as if nothing were kept (correct, and paced by each user's history-read budget).
 */

/** What a subscribe asks for: the `historyLimit` most recent messages, or every one after `since`. */
export interface HistoryRequest {
  since?: number | undefined
  historyLimit: number
}

/** What the topics kept for one user take. */
interface UserShare {
  readonly user: number
  bytes: number
  /** Topics kept for the user: the share is let go with the last. */
  topics: number
}

/** One topic's kept messages. */
export interface KeptMessages {
  /**
   * Oldest first, ending at the topic's latest id: every one of its last `perTopic` (or all
   * of them, in a younger topic).
   */
  readonly frames: MessageFrame[]
  /** What `frames` take, about (keptBytes). */
  bytes: number
  /** Whose budget they count against; undefined when no one's (the subscribe named no user). */
  readonly share: UserShare | undefined
}

export interface RecentMessagesOptions {
  /** Messages kept per topic (HISTORY_LIMIT); 0 keeps none. */
  perTopic: number
  /** Over all topics at most. */
  maxBytes?: number
  /** For the topics kept for one user at most. */
  maxBytesPerUser?: number
}

/** Memory for recent messages over all topics at most; past it, topics read their histories. */
export const maxRecentBytes = 64 * 1024 * 1024
/**
 * One user's part of it at most: a sixteenth. A user can subscribe to many topics
 * (MAX_CONNECTIONS_PER_USER × 100, 2000 at the defaults), which could otherwise fill all of
 * maxRecentBytes alone. At the defaults (HISTORY_LIMIT 30, MAX_MESSAGE_CHARS 2000) it holds
 * about 30 topics of the longest messages, or hundreds of everyday ones.
 */
export const maxRecentBytesPerUser = maxRecentBytes / 16

/**
 * About what a kept message takes in memory: its strings (two bytes a character at worst)
 * and the object, and its data at twice its JSON (objects, arrays and numbers weigh more
 * than their text; the data is at most 16 KiB of it).
 */
export function keptBytes (frame: MessageFrame): number {
  const bytes = 2 * (frame.topic.length + frame.author.length + frame.text.length + frame.at.length) + 100
  return frame.data === undefined ? bytes : bytes + 2 * 2 * JSON.stringify(frame.data).length
}

export class RecentMessages {
  private readonly perTopic: number
  private readonly maxBytes: number
  private readonly maxBytesPerUser: number
  private totalBytes = 0
  private readonly shares = new Map<number, UserShare>()

  constructor (options: RecentMessagesOptions) {
    this.perTopic = options.perTopic
    this.maxBytes = options.maxBytes ?? maxRecentBytes
    this.maxBytesPerUser = options.maxBytesPerUser ?? maxRecentBytesPerUser
  }

  /** What every topic's kept messages take, about. */
  get bytes (): number {
    return this.totalBytes
  }

  /** What the topics kept for `user` take, about. */
  bytesOf (user: number): number {
    return this.shares.get(user)?.bytes ?? 0
  }

  /**
   * After a topic's first read of its most recent messages here (not a catch-up): keeps its
   * latest, if the read holds every one of them and the budgets allow, for `user` (the
   * subscriber's). Undefined: the topic is not kept.
   */
  keep (history: History, user: number | undefined): KeptMessages | undefined {
    if (this.perTopic === 0) return undefined
    const { messages, lastId } = history
    const complete = (messages.at(-1)?.id ?? 0) === lastId && (messages.length >= this.perTopic || messages.length === lastId)
    if (!complete) return undefined
    const frames = messages.slice(Math.max(0, messages.length - this.perTopic))
    const bytes = frames.reduce((sum, frame) => sum + keptBytes(frame), 0)
    if (this.totalBytes + bytes > this.maxBytes) return undefined
    if (user !== undefined && this.bytesOf(user) + bytes > this.maxBytesPerUser) return undefined
    const share = user === undefined ? undefined : this.shareOf(user)
    if (share !== undefined) {
      share.bytes += bytes
      share.topics++
    }
    this.totalBytes += bytes
    return { frames, bytes, share }
  }

  /**
   * The topic's next message, in id order: kept, and the oldest let go past `perTopic`.
   * False when that takes a budget past its bound: the topic's messages are forgotten.
   */
  add (kept: KeptMessages, frame: MessageFrame): boolean {
    let bytes = keptBytes(frame)
    kept.frames.push(frame)
    if (kept.frames.length > this.perTopic) bytes -= keptBytes(kept.frames.shift() as MessageFrame)
    kept.bytes += bytes
    this.totalBytes += bytes
    const { share } = kept
    if (share !== undefined) share.bytes += bytes
    if (this.totalBytes <= this.maxBytes && (share === undefined || share.bytes <= this.maxBytesPerUser)) return true
    this.forget(kept)
    return false
  }

  /** The topic's messages are no longer kept (its last subscriber here left, or a budget ran out). */
  forget (kept: KeptMessages): void {
    this.totalBytes -= kept.bytes
    const { share } = kept
    if (share !== undefined) {
      share.bytes -= kept.bytes
      if (--share.topics === 0) this.shares.delete(share.user)
    }
    kept.bytes = 0
  }

  private shareOf (user: number): UserShare {
    let share = this.shares.get(user)
    if (share === undefined) {
      share = { user, bytes: 0, topics: 0 }
      this.shares.set(user, share)
    }
    return share
  }

  /** Every topic's messages are forgotten at once (the bus closes). */
  clear (): void {
    this.totalBytes = 0
    this.shares.clear()
  }

  /**
   * The history from a topic's kept messages, when they hold all of it (the caller knows
   * that nothing committed up to `lastId` is missing here). Undefined means: read it.
   */
  historyFrom (kept: KeptMessages, lastId: number, request: HistoryRequest): History | undefined {
    const recent = kept.frames
    const fromStart = recent.length === lastId
    if (request.since === undefined) {
      if (request.historyLimit > recent.length && !fromStart) return undefined
      return { messages: recent.slice(recent.length - Math.min(request.historyLimit, recent.length)), lastId, truncated: false }
    }
    const oldestKept = recent[0]?.id ?? lastId + 1
    if (request.since > lastId || (request.since < oldestKept - 1 && !fromStart)) return undefined
    const missed = recent.slice(Math.max(0, request.since - oldestKept + 1))
    const messages = withinReply(missed, maxSinceMessages, maxSinceBytes)
    return { messages, lastId, truncated: messages.length < missed.length }
  }
}
