import { historyLimit, maxPageSize } from '/protocol.js'
import { olderMessages } from './api.js'
import { byId } from './dom.js'
import { isDirect, topicLabel } from './topic-label.js'

/**
 * The open topic's history in the log: the messages the client library tells (its most
 * recent history, then live ones, each once and in order, the catch-up after a reconnection
 * included), and older pages over HTTP when the reader scrolls up.
 */

/** Older messages fetched per scroll to the top: a screenful or two, never over the server's page. */
const olderPageSize = Math.min(50, maxPageSize)
/** Scrolling within this many pixels of the top loads older messages. */
const loadOlderWithinPx = 120

export class TopicHistory {
  /**
   * @param {{
   *   log: import('./message-log.js').MessageLog,
   *   store: import('./topic-store.js').TopicStore,
   *   listeners: { connected: () => boolean, sessionEnded: () => void }
   * }} options listeners.connected: the chat is on (not logged out)
   */
  constructor ({ log, store, listeners }) {
    this.log = log
    this.store = store
    this.listeners = listeners
    this.scroller = byId('log-scroller')
    this.loadOlderButton = byId('load-older')
    this.historyStart = byId('history-start')
    this.emptyHint = byId('empty-hint')
    /** Messages told since the topic opened, before its first `subscribed`: its most recent history. */
    this.told = 0
    /** The topic's first `subscribed` has arrived. */
    this.loaded = false
    /** The log goes back to the topic's first message: the server has nothing older. */
    this.reachedStart = false
    this.loadingOlder = false

    this.scroller.addEventListener('scroll', () => {
      if (this.scroller.scrollTop < loadOlderWithinPx) void this.loadOlder()
    }, { passive: true })
    this.loadOlderButton.addEventListener('click', () => { void this.loadOlder() })
  }

  /** Empties the log for the topic opened now, whose messages come next. */
  opened () {
    this.loaded = false
    this.reachedStart = false
    this.told = 0
    this.log.clear()
    this.showEdge()
  }

  /**
   * The library's `subscribed` event for the open topic: its history has been told just before.
   * @param {{ truncated: boolean }} event
   */
  subscribed (event) {
    // The first answer after opening is the most recent history: shorter than asked for, it is the whole topic.
    const wholeTopic = !this.loaded && !event.truncated && this.told < historyLimit
    this.loaded = true
    if (wholeTopic || this.log.oldestId === 1) this.reachedStart = true
    this.showEdge()
    this.fillViewport()
  }

  /** @param {Array<{ id: number, author: string, text: string, at: string }>} messages in id order */
  messages (messages) {
    if (!this.loaded) this.told += messages.length
    this.log.add(messages)
    // The first message of an empty topic is also its start.
    this.showEdge()
  }

  /** @private The button to load older messages, or the line saying there are none. */
  showEdge () {
    const hasMessages = this.log.oldestId !== undefined
    this.loadOlderButton.hidden = !this.loaded || this.reachedStart || !hasMessages
    this.loadOlderButton.disabled = this.loadingOlder
    this.loadOlderButton.textContent = this.loadingOlder ? 'Loading older messages…' : 'Load older messages'
    this.historyStart.hidden = !this.loaded || !this.reachedStart || !hasMessages
    const label = topicLabel(this.store, this.store.open)
    const direct = isDirect(this.store, this.store.open)
    this.historyStart.textContent = direct ? `This is the start of your messages with ${label}.` : `This is the start of ${label}.`
    this.emptyHint.textContent = !this.loaded ? 'Loading messages…' : direct ? `No messages with ${label} yet. Say hello!` : `No messages in ${label} yet. Say hello!`
  }

  /** @private */
  async loadOlder () {
    const oldest = this.log.oldestId
    if (this.loadingOlder || this.reachedStart || oldest === undefined || !this.listeners.connected()) return
    const topic = this.store.open
    this.loadingOlder = true
    this.showEdge()
    let loaded = false
    try {
      const { messages } = await olderMessages(topic, oldest, olderPageSize)
      if (topic !== this.store.open) return
      this.log.add(messages, { older: true })
      if (messages.length < olderPageSize || this.log.oldestId === 1) this.reachedStart = true
      loaded = true
    } catch (error) {
      if (error.status === 401) {
        this.listeners.sessionEnded()
        return
      }
      // The button stays for another try.
    } finally {
      this.loadingOlder = false
      if (topic === this.store.open) this.showEdge()
    }
    if (loaded) this.fillViewport()
  }

  /** @private Loads older messages until the log can scroll, so there is always a top to scroll to. */
  fillViewport () {
    if (!this.log.scrollable) void this.loadOlder()
  }
}
