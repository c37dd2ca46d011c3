import { maxTopicsPerConnection } from '/protocol.js'
import { markRead, topicSummaries } from './api.js'

/**
 * Keeps the store's joined topics and counts in step with the server: the unread counts and
 * read positions the server keeps (GET /api/topics counts from them, PUT …/read moves them,
 * so they follow the reader to every device), and a subscribe on the page's one socket for
 * every joined topic, whose messages the store counts.
 */

/** While connected and visible, the list is asked for again this often, for topics new to the reader. */
const refreshMs = 60_000
/** The tag of a subscribe for an unread count, not for the open topic's log. */
export const countingTag = 'counting'

export class JoinedTopics {
  /**
   * @param {import('./topic-store.js').TopicStore} store
   * @param {{
   *   socket: () => import('./connection.js').ChatSocket | undefined,
   *   sessionEnded: () => void
   * }} listeners socket: the page's socket, while logged in
   */
  constructor (store, listeners) {
    this.store = store
    this.listeners = listeners
    /** @type {Promise<boolean> | undefined} */
    this.refreshing = undefined
    /** @type {Map<string, { sentTo: number, sending: boolean }>} per topic, the newest read position the server confirmed */
    this.readSent = new Map()

    store.on('read', (topic) => { void this.sendRead(topic) })
    store.on('leave', (topic) => { this.listeners.socket()?.unsubscribe(topic) })
    store.on('reset', () => { this.readSent.clear() })
    // A private topic or direct message the reader was added to: counted at once, and the
    // server's list says who is in a direct message.
    store.on('added', () => { void this.refresh().then((counted) => { this.subscribeJoined(counted) }) })
    setInterval(() => {
      if (this.store.reading && this.listeners.socket()?.open === true) void this.refresh().then((counted) => { this.subscribeJoined(counted) })
    }, refreshMs)
  }

  /**
   * A socket opened: the counts are asked for again, then every joined topic is subscribed
   * from the newest message counted, so that what came meanwhile is counted once.
   */
  async connected () {
    const socket = this.listeners.socket()
    const socketCount = socket?.socketCount
    const counted = await this.refresh()
    if (socket === undefined || socket !== this.listeners.socket() || socket.socketCount !== socketCount) return
    this.subscribeJoined(counted)
  }

  /**
   * A `subscribed` frame that was asked for counting: what it holds is counted, and a cut
   * reply (`truncated`) is continued from its last message.
   * @param {{ topic: string, history: Array<{ id: number }>, truncated?: true }} frame
   */
  counting (frame) {
    // Left while the subscribe was on its way.
    if (!this.store.joined.has(frame.topic)) return
    this.store.received(frame.topic, frame.history)
    const last = frame.history.at(-1)
    if (frame.truncated === true && last !== undefined) this.listeners.socket()?.subscribe(frame.topic, { since: last.id, tag: countingTag })
  }

  /**
   * @private
   * Asks the server for every topic and the reader's unread counts, once at a time.
   * @returns {Promise<boolean>} whether the server answered
   */
  async refresh () {
    this.refreshing ??= (async () => {
      let topics
      try {
        ({ topics } = await topicSummaries())
      } catch (error) {
        if (error.status === 401) this.listeners.sessionEnded()
        return false
      } finally {
        this.refreshing = undefined
      }
      this.store.listing(topics)
      return true
    })()
    return await this.refreshing
  }

  /**
   * @private
   * Subscribes the socket to every joined topic it does not hold yet, for their counts: from
   * the newest message counted when the server has just counted (so the reply is short), else
   * for the most recent history only, rather than all that a stale count would ask for.
   */
  subscribeJoined (counted) {
    const socket = this.listeners.socket()
    if (socket?.open !== true) return
    let held = socket.topics.size
    for (const name of this.store.joinedNames()) {
      if (held >= maxTopicsPerConnection) return
      if (socket.has(name)) continue
      socket.subscribe(name, { since: counted ? this.store.counts(name).lastId : undefined, tag: countingTag })
      held += 1
    }
  }

  /** @private One PUT at a time per topic; the newest position is sent once the one on its way is answered. */
  async sendRead (topic) {
    const counts = this.store.counts(topic)
    let sent = this.readSent.get(topic)
    if (sent === undefined) this.readSent.set(topic, sent = { sentTo: 0, sending: false })
    if (sent.sending || sent.sentTo >= counts.readTo) return
    sent.sending = true
    try {
      while (sent.sentTo < counts.readTo) {
        const id = counts.readTo
        await markRead(topic, id)
        sent.sentTo = id
      }
    } catch (error) {
      // Sent again with the next position; the count on the server stays until then.
      if (error.status === 401) this.listeners.sessionEnded()
    } finally {
      sent.sending = false
    }
  }
}
