import { maxTopicsPerConnection } from '/protocol.js'
import { markRead, topicSummaries } from './api.js'

/**
 * Keeps the store's joined topics and counts in step with the server: the unread counts and
 * read positions the server keeps (GET /api/topics counts from them, PUT …/read moves them,
 * so they follow the reader to every device), and a subscription of the page's client (the
 * client library's CanopyClient, one socket) to every joined topic, whose messages the store
 * counts. The client keeps each topic's place across reconnections, so what came meanwhile
 * is told, and counted, once.
 */

/** While connected and visible, the list is asked for again this often, for topics new to the reader. */
const refreshMs = 60_000

export class JoinedTopics {
  /**
   * @param {import('./topic-store.js').TopicStore} store
   * @param {{
   *   client: () => import('/client/index.js').CanopyClient | undefined,
   *   sessionEnded: () => void
   * }} listeners client: the page's client, while logged in
   */
  constructor (store, listeners) {
    this.store = store
    this.listeners = listeners
    /** @type {Promise<boolean> | undefined} */
    this.refreshing = undefined
    /** @type {Map<string, { sentTo: number, sending: boolean }>} per topic, the newest read position the server confirmed */
    this.readSent = new Map()

    store.on('read', (topic) => { void this.sendRead(topic) })
    store.on('leave', (topic) => { this.listeners.client()?.unsubscribe(topic) })
    store.on('reset', () => { this.readSent.clear() })
    // A private topic or direct message the reader was added to: counted at once, and the
    // server's list says who is in a direct message.
    store.on('added', () => { void this.refresh().then((counted) => { this.subscribeJoined(counted) }) })
    setInterval(() => {
      if (this.store.reading && this.listeners.client()?.state === 'open') void this.refresh().then((counted) => { this.subscribeJoined(counted) })
    }, refreshMs)
  }

  /**
   * A socket opened: the counts are asked for again, then every joined topic not subscribed
   * yet is, from the newest message counted, so that what came meanwhile is counted once.
   */
  async connected () {
    const client = this.listeners.client()
    const counted = await this.refresh()
    if (client === undefined || client !== this.listeners.client()) return
    this.subscribeJoined(counted)
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
    const client = this.listeners.client()
    if (client === undefined || client.state === 'closed') return
    const held = new Set(client.topics)
    for (const name of this.store.joinedNames()) {
      if (held.size >= maxTopicsPerConnection) return
      if (held.has(name)) continue
      const lastId = counted ? this.store.counts(name).lastId : undefined
      // A refusal (a private topic the reader is no longer in) comes as the client's `error` event too.
      void client.subscribe(name, lastId === undefined ? {} : { since: lastId }).catch(() => {})
      held.add(name)
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
