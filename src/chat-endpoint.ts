import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Access, MembersChange, Role, TopicAction } from './access.js'
import type { Connection, EndpointDefinition, Refusal } from './endpoint.js'
import type { ChatHandshake, ChatState } from './chat-handshake.js'
import type { ChatPolicing } from './chat-policing.js'
import type { History } from './message-store.js'
import type { ProgramAdmission } from './program-auth.js'
import { CloseCode, errorFrame, isValidTopic, maxTopicsPerConnection, parseClientFrame, type ClientFrame, type ErrorCode, type ErrorFrame, type ServerFrame } from './protocol.js'
import type { Publisher, PublishRefusal } from './publisher.js'
import type { SessionSockets } from './session-sockets.js'
import { AccessRefusedError, type SubscribeOptions, type Subscriber } from './topic-bus.js'
import type { TopicCreations } from './topic-creations.js'
import type { User } from './users.js'

export type ChatConnection = Connection<ChatState, ServerFrame>

/** The topic bus as the chat uses it (src/topic-bus.ts). */
export interface ChatTopics {
  subscribe(topic: string, subscriber: Subscriber, options: SubscribeOptions, subscribed: (history: History) => ServerFrame): Promise<void>
  unsubscribe(topic: string, subscriber: Subscriber): boolean
  has(topic: string, subscriber: Subscriber): boolean
}

/** Presence as the chat uses it (plugins/presence.ts). */
export interface ChatPresence {
  join(topic: string, user: User, connection: Subscriber): Promise<void>
  leave(topic: string, user: User): void
  presentIn(topic: string): Promise<string[]>
}

export interface ChatEndpointOptions {
  keepaliveIntervalMs: number
  maxBufferedBytes: number
  /** MAX_MESSAGE_CHARS and HISTORY_LIMIT; TOPIC_CREATE_RATE for the refusal's words. */
  maxMessageChars: number
  historyLimit: number
  topicCreatesPerHour: number
  log: FastifyBaseLogger
  handshake: ChatHandshake
  policing: ChatPolicing<ChatConnection>
  topics: ChatTopics
  presence: ChatPresence
  publisher: Pick<Publisher, 'queue' | 'allAnswered'>
  topicCreations: Pick<TopicCreations, 'admit'>
  /** Who may do what in a topic (src/access.ts): asked before anything of a topic is counted, read or sent. */
  access: Pick<Access, 'decide' | 'forgetMembers' | 'refresh' | 'knownVisibility'>
  /** The history reads a user may make (plugins/history-reads.ts): 0, or the wait in ms. */
  historyReads: { take(userId: number): number }
  sessionSockets: Pick<SessionSockets, 'add' | 'delete' | 'addProgram' | 'deleteProgram'>
  /** The user a token admits, and until when (plugins/session.ts): for an `auth` frame. */
  admitToken(token: string): Promise<ProgramAdmission>
  /** Counts for the metrics: each publish refused before it is handled, each upgrade refused. */
  published(result: ErrorCode): void
  upgradeRefused(statusCode: number): void
}

/** Private topics whose members are read again at once after a LISTEN outage. */
const concurrentMemberReads = 8
/** The longest delay a timer takes (2^31 - 1 ms, about 24 days): a later expiry is waited for in steps. */
const maxTimerDelayMs = 2 ** 31 - 1
/** A close reason is at most 123 bytes. */
const maxCloseReasonChars = 100

/**
 * The chat endpoint, /chat, on the endpoint layer (src/endpoint.ts): opens only for a
 * logged-in session showing its ticket (src/chat-handshake.ts), subscribes to the URL's
 * topic with its history, and speaks the frames of src/protocol.ts: subscribe, unsubscribe
 * and publish in; subscribed, unsubscribed, added, ack, message, joined, left and error out.
 * Every frame that names a topic asks the access module first (publishes, in the publish
 * path); a member removed from a private topic is unsubscribed from it here at once.
 */
export class ChatEndpoint implements EndpointDefinition<ChatState, ServerFrame> {
  readonly name = 'chat'
  readonly path = '/chat'
  readonly keepaliveIntervalMs: number
  readonly maxBufferedBytes: number
  /** The open connections by user id: membership changes reach a user's sockets. */
  private readonly byUser = new Map<number, Set<ChatConnection>>()
  /** The sockets opened with a token: each closes with 4401 when its token expires, unless an `auth` frame replaced it. */
  private readonly tokenExpiries = new Map<ChatConnection, NodeJS.Timeout>()

  constructor (private readonly options: ChatEndpointOptions) {
    this.keepaliveIntervalMs = options.keepaliveIntervalMs
    this.maxBufferedBytes = options.maxBufferedBytes
  }

  async open (request: FastifyRequest): Promise<ChatState | Refusal> {
    return this.options.handshake.check(request)
  }

  async opened (connection: ChatConnection): Promise<void> {
    const { user, sessionId, authentication, firstTopic } = connection.state
    this.options.handshake.opened(user)
    if (sessionId !== undefined) this.options.sessionSockets.add(sessionId, connection)
    else this.options.sessionSockets.addProgram(user.id, connection)
    if (authentication?.via === 'token') this.expireAt(connection, authentication.expiresAtMs)
    let ofUser = this.byUser.get(user.id)
    if (ofUser === undefined) this.byUser.set(user.id, ofUser = new Set())
    ofUser.add(connection)
    this.options.log.info({ reqId: connection.reqId, user: user.name, topic: firstTopic }, 'socket opened')
    if (!isValidTopic(firstTopic)) {
      connection.send(errorFrame('bad_topic', 'the topic in the URL is not a topic name; subscribe to one'))
      return
    }
    await this.subscribe(connection, firstTopic)
  }

  async text (connection: ChatConnection, data: string): Promise<void> {
    const { policing } = this.options
    const frame = parseClientFrame(data, this.options.maxMessageChars)
    const ref = 'ref' in frame ? frame.ref : undefined
    const frameWaitMs = policing.takeFrame(connection)
    if (frameWaitMs > 0) {
      if (isPublishAttempt(frame, data)) this.options.published('rate_limited')
      policing.refuse(connection, `over ${policing.frameRatePerSecond} frames per second; send again in ${frameWaitMs} ms`, frameWaitMs, ref)
      return
    }
    if (frame.type === 'error') {
      if (isPublishAttempt(frame, data)) this.options.published(frame.code)
      connection.send(frame)
      return
    }
    await this.dispatch(connection, frame)
  }

  closed (connection: ChatConnection, code: number, reason: string): void {
    const { user, sessionId, topics } = connection.state
    this.options.log.info({ reqId: connection.reqId, user: user.name, code, reason, topics: [...topics] }, 'socket closed')
    for (const topic of [...topics]) this.unsubscribe(connection, topic)
    this.options.handshake.closed(user)
    if (sessionId !== undefined) this.options.sessionSockets.delete(sessionId, connection)
    else this.options.sessionSockets.deleteProgram(user.id, connection)
    clearTimeout(this.tokenExpiries.get(connection))
    this.tokenExpiries.delete(connection)
    const ofUser = this.byUser.get(user.id)
    ofUser?.delete(connection)
    if (ofUser?.size === 0) this.byUser.delete(user.id)
    this.options.policing.forget(connection)
  }

  refused (statusCode: number): void {
    this.options.upgradeRefused(statusCode)
  }

  /** Every message a client was told is coming is acked before its socket closes with 1001. */
  async finishInFlight (): Promise<void> {
    await this.options.publisher.allAnswered()
  }

  /**
   * A membership change, made here or heard from another instance (Access.onChange): a
   * removed user's sockets here leave the topic (`unsubscribed`, reason `removed`), and an
   * added user's sockets hear `added`. A change of role is no `added`.
   */
  membersChanged (change: MembersChange, before: Role | null | undefined): void {
    const sockets = this.byUser.get(change.userId)
    if (sockets === undefined) return
    if (change.role === null) {
      for (const connection of sockets) this.removeFrom(connection, change.topic)
    } else if (before === null || before === undefined) {
      for (const connection of sockets) connection.send({ type: 'added', topic: change.topic, by: change.by })
    }
  }

  /**
   * After a LISTEN outage, before the catch-up (the topic bus's beforeCatchUp): membership
   * changes may have been missed, so every private topic's members are forgotten, those of
   * the topics subscribed here (every topic not known to be public) are read again, and the
   * sockets of users no longer members leave them. Throws when the database cannot say (the
   * bus tries again, from the start).
   */
  async recheckMembers (): Promise<void> {
    const { access } = this.options
    access.forgetMembers()
    const subscribers = new Map<string, ChatConnection[]>()
    for (const sockets of this.byUser.values()) {
      for (const connection of sockets) {
        for (const topic of connection.state.topics) {
          if (access.knownVisibility(topic) === 'public') continue
          const list = subscribers.get(topic)
          if (list === undefined) subscribers.set(topic, [connection])
          else list.push(connection)
        }
      }
    }
    const topics = [...subscribers.keys()]
    const readNext = async (): Promise<void> => {
      for (let topic = topics.pop(); topic !== undefined; topic = topics.pop()) {
        const members = await access.refresh(topic)
        if (members === undefined) continue
        for (const connection of subscribers.get(topic) ?? []) {
          if (!members.has(connection.state.user.id)) this.removeFrom(connection, topic)
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrentMemberReads, topics.length) }, readNext))
  }

  /** The user is no longer a member of the topic: this socket leaves it, and hears why. */
  private removeFrom (connection: ChatConnection, topic: string): void {
    if (!connection.state.topics.has(topic)) return
    this.unsubscribe(connection, topic)
    connection.send({ type: 'unsubscribed', topic, reason: 'removed' })
  }

  /**
   * Whether the user may do `action` in the topic (src/access.ts); when not, the refusal is
   * sent: `forbidden` or `bad_topic` with the topic, or `unavailable` when the database
   * cannot say.
   */
  private async may (connection: ChatConnection, topic: string, action: TopicAction, ref?: string): Promise<boolean> {
    let decision
    try {
      decision = await this.options.access.decide(connection.state.user.id, topic, action)
    } catch (error) {
      this.options.log.warn({ err: error, topic }, 'reading who may use a topic failed')
      connection.send(errorFrame('unavailable', `could not tell whether you may use ${topic}; try again`, ref, topic))
      return false
    }
    if (decision.allowed) return true
    connection.send(decision.code === 'bad_topic'
      ? errorFrame('bad_topic', `there is no direct-message topic ${topic}; start one with POST /api/dm`, ref, topic)
      : errorFrame('forbidden', `${topic} is private and you are not a member`, ref, topic))
    return false
  }

  private async dispatch (connection: ChatConnection, frame: ClientFrame): Promise<void> {
    switch (frame.type) {
      case 'subscribe':
        await this.subscribe(connection, frame.topic, frame.since)
        return
      case 'unsubscribe':
        // Leaving is always allowed; a topic not subscribed says no more than a subscribe would.
        if (!connection.state.topics.has(frame.topic) && !await this.may(connection, frame.topic, 'read')) return
        this.unsubscribe(connection, frame.topic)
        connection.send({ type: 'unsubscribed', topic: frame.topic })
        return
      case 'publish':
        await this.publish(connection, frame.topic, frame.text, frame.ref, frame.data)
        return
      case 'auth':
        await this.replaceToken(connection, frame.token)
    }
  }

  /**
   * An `auth` frame: a new token for a socket opened with one, for the same user; the socket
   * then lives until the new token expires. A token that admits no one closes the socket
   * (4401); another user's token, or a socket that did not open with a token, is an error.
   */
  private async replaceToken (connection: ChatConnection, token: string): Promise<void> {
    const { user, authentication } = connection.state
    if (authentication?.via !== 'token') {
      connection.send(errorFrame('bad_request', 'only a socket opened with a token takes a new one'))
      return
    }
    let admission
    try {
      admission = await this.options.admitToken(token)
    } catch (error) {
      this.options.log.warn({ err: error }, 'admitting a token failed')
      connection.send(errorFrame('unavailable', 'could not check the token; send it again'))
      return
    }
    if (!admission.ok) {
      this.options.log.info({ reqId: connection.reqId, user: user.name, reason: admission.message }, 'socket token refused')
      connection.close(CloseCode.loggedOut, admission.message.slice(0, maxCloseReasonChars))
      return
    }
    if (admission.user.id !== user.id || admission.authentication.via !== 'token') {
      connection.send(errorFrame('bad_request', `the token names another user than ${user.name}: a socket keeps its user`))
      return
    }
    connection.state.authentication = admission.authentication
    this.expireAt(connection, admission.authentication.expiresAtMs)
  }

  /** Closes the socket with 4401 when its token expires (an `auth` frame sets a later time). */
  private expireAt (connection: ChatConnection, expiresAtMs: number): void {
    clearTimeout(this.tokenExpiries.get(connection))
    const delayMs = Math.min(Math.max(expiresAtMs - Date.now(), 0), maxTimerDelayMs)
    const timer = setTimeout(() => {
      if (Date.now() < expiresAtMs) {
        this.expireAt(connection, expiresAtMs)
        return
      }
      this.tokenExpiries.delete(connection)
      connection.close(CloseCode.loggedOut, 'token expired')
    }, delayMs)
    timer.unref()
    this.tokenExpiries.set(connection, timer)
  }

  private async subscribe (connection: ChatConnection, topic: string, since?: number): Promise<void> {
    const { topics: bus, presence, policing, log } = this.options
    const { topics, user } = connection.state
    const isNew = !topics.has(topic)
    if (isNew && topics.size >= maxTopicsPerConnection) {
      connection.send(errorFrame('bad_request', `at most ${maxTopicsPerConnection} topics per connection`))
      return
    }
    const readWaitMs = this.options.historyReads.take(user.id)
    if (readWaitMs > 0) {
      policing.refuse(connection, `over the history reads a user may make per second; subscribe again in ${readWaitMs} ms`, readWaitMs, undefined, topic)
      return
    }
    // Who may read it, before a new topic is counted and anything of it is read.
    if (!await this.may(connection, topic, 'read')) return
    // A subscribe may bring a topic into being: TOPIC_CREATE_RATE (free when the topic is known to exist).
    const creation = await this.options.topicCreations.admit(user.id, topic, { make: true })
    if (creation === 'unavailable') {
      connection.send(errorFrame('unavailable', `could not subscribe to ${topic}; subscribe again`))
      return
    }
    if (creation !== 'ok') {
      policing.refuse(connection, `over ${this.options.topicCreatesPerHour} new topics per hour; ${topic} is not one yet; subscribe again in ${creation.retryAfterMs} ms`, creation.retryAfterMs, undefined, topic)
      return
    }
    // The user counts as present from now, and the `subscribed` frame waits until the
    // database says so: whoever subscribes after it arrives sees this user present.
    if (isNew) topics.add(topic)
    const entered = isNew ? presence.join(topic, user, connection) : undefined
    try {
      let present: string[] = []
      const alongside = Promise.all([presence.presentIn(topic).then((names) => { present = names }), entered])
      await bus.subscribe(topic, connection, { since, historyLimit: this.options.historyLimit, alongside, userId: user.id },
        (history) => subscribed(topic, history, withUser(present, user.name)))
    } catch (error) {
      // A later subscribe to the topic (after an unsubscribe) may have taken its place: it stays.
      if (isNew && !bus.has(topic, connection) && topics.delete(topic)) presence.leave(topic, user)
      if (error instanceof AccessRefusedError) {
        // Removed while subscribing: the bus let nothing of the topic through.
        if (topics.delete(topic)) presence.leave(topic, user)
        connection.send(errorFrame('forbidden', `${topic} is private and you are not a member`, undefined, topic))
        return
      }
      log.warn({ err: error, topic }, 'subscribe failed')
      connection.send(errorFrame('unavailable', `could not read the history of ${topic}; subscribe again`))
      return
    }
    // The next frame waits until this history is written out: one large reply at a time.
    await connection.repliesWritten()
  }

  private unsubscribe (connection: ChatConnection, topic: string): void {
    const { topics } = connection.state
    if (!topics.delete(topic)) return
    this.options.topics.unsubscribe(topic, connection)
    this.options.presence.leave(topic, connection.state.user)
  }

  /**
   * Waits for the message's place in the queue, not for its commit: the connection's next
   * frames go on meanwhile (and share its transaction), in order. The ack goes out on the
   * commit, before the message itself reaches the topic's subscribers.
   */
  private async publish (connection: ChatConnection, topic: string, text: string | undefined, ref: string, data: unknown): Promise<void> {
    const queued = await this.options.publisher.queue(connection.state.user, topic, text, ref, data)
    if (!queued.queued) {
      this.answerRefusal(connection, queued.refusal, ref)
      return
    }
    void queued.outcome.then((outcome) => {
      if (outcome.ok) connection.send({ type: 'ack', ref, id: outcome.message.id, at: outcome.message.at })
      else this.answerRefusal(connection, outcome, ref)
    })
  }

  private answerRefusal (connection: ChatConnection, refusal: PublishRefusal, ref: string): void {
    if (refusal.code === 'rate_limited') this.options.policing.refuse(connection, refusal.message, refusal.retryAfterMs ?? 1000, ref)
    else connection.send(errorFrame(refusal.code, refusal.message, ref, refusal.topic))
  }
}

/**
 * Whether a frame refused before it is handled was a publish attempt, for the metrics: a
 * publish, or a frame that may have meant to be one (it cannot be read as a subscribe or an
 * unsubscribe). Publishes that get further are counted by the publish path.
 */
function isPublishAttempt (frame: ClientFrame | ErrorFrame, data: string): boolean {
  if (frame.type !== 'error') return frame.type === 'publish'
  // Only these refuse a subscribe or an unsubscribe too: read the type again (a refusal is rare).
  if (frame.code !== 'bad_request' && frame.code !== 'bad_topic') return true
  try {
    const { type } = JSON.parse(data) as { type?: unknown }
    return type !== 'subscribe' && type !== 'unsubscribe' && type !== 'auth'
  } catch {
    return true
  }
}

/** The first frame of a subscription, and every later one: the topic's history and who is there. */
function subscribed (topic: string, history: History, present: string[]): ServerFrame {
  return history.truncated
    ? { type: 'subscribed', topic, history: history.messages, present, truncated: true }
    : { type: 'subscribed', topic, history: history.messages, present }
}

/** The names present, with the subscriber's own (it may not be counted yet), each once, sorted. */
function withUser (present: string[], name: string): string[] {
  return present.includes(name) ? present : [...present, name].sort()
}
