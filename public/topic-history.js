import { maxPageSize } from '/protocol.js'
import { olderMessages } from './api.js'
import { CatchUp } from './catch-up.js'

/**
 * The open topic's history in the log: what `subscribed` frames and live messages bring,
 * the catch-up after a reconnection, and older pages over HTTP when the reader scrolls up.
 */

/** Older messages fetched per scroll to the top: a screenful or two, never over the server's page. */
const olderPageSize = Math.min(50, maxPageSize)
/** Scrolling within this many pixels of the top loads older messages. */
const loadOlderWithinPx = 120
/** After `unavailable`, the history is asked for again after this long. */
const resubscribeMs = 2000

const byId = (id) => document.getElementById(id)

export class TopicHistory {
  /**
   * @param {import('./message-log.js').MessageLog} log
   * @param {{ connection: () => import('./connection.js').ChatConnection | undefined, sessionEnded: () => void }} hooks
   */
  constructor (log, hooks) {
    this.log = log
    this.hooks = hooks
    this.scroller = byId('log-scroller')
    this.loadOlderButton = byId('load-older')
    this.historyStart = byId('history-start')
    this.emptyHint = byId('empty-hint')
    this.catchUp = new CatchUp()
    this.topic = ''
    /** The topic's first `subscribed` has arrived. */
    this.loaded = false
    /** The log goes back to the topic's first message. */
    this.reachedStart = false
    this.loadingOlder = false
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.resubscribeTimer = undefined

    this.scroller.addEventListener('scroll', () => {
      if (this.scroller.scrollTop < loadOlderWithinPx) void this.loadOlder()
    }, { passive: true })
    this.loadOlderButton.addEventListener('click', () => { void this.loadOlder() })
  }

  /** Empties the log for `topic`, whose messages come next. */
  open (topic) {
    this.topic = topic
    this.loaded = false
    this.reachedStart = false
    this.catchUp.reset()
    clearTimeout(this.resubscribeTimer)
    this.log.clear()
    this.showEdge()
  }

  /** The socket is gone; a new one starts with a plain `subscribed`. */
  dropped () {
    clearTimeout(this.resubscribeTimer)
    this.catchUp.dropped()
  }

  /** @param {{ topic: string, history: Array<{ id: number, author: string, text: string, at: string }>, truncated?: true }} frame */
  subscribed (frame) {
    this.log.add(frame.history)
    const since = this.catchUp.subscribed(frame)
    if (since !== undefined) this.hooks.connection()?.catchUp(frame.topic, since)
    this.loaded = true
    if (this.log.oldestId === 1) this.reachedStart = true
    this.showEdge()
    this.fillViewport()
  }

  /** @param {{ id: number, author: string, text: string, at: string }} message */
  message (message) {
    this.log.add([message])
    this.catchUp.message(message.id)
  }

  /** The server could not read the history: ask again in a while, on this socket. */
  unavailable () {
    clearTimeout(this.resubscribeTimer)
    const { topic } = this
    this.resubscribeTimer = setTimeout(() => {
      if (topic === this.topic) this.hooks.connection()?.catchUp(topic, this.catchUp.retry())
    }, resubscribeMs)
  }

  /** @private The button to load older messages, or the line saying there are none. */
  showEdge () {
    const hasMessages = this.log.oldestId !== undefined
    this.loadOlderButton.hidden = !this.loaded || this.reachedStart || !hasMessages
    this.loadOlderButton.disabled = this.loadingOlder
    this.loadOlderButton.textContent = this.loadingOlder ? 'Loading older messages…' : 'Load older messages'
    this.historyStart.hidden = !this.loaded || !this.reachedStart || !hasMessages
    this.historyStart.textContent = `This is the start of #${this.topic}.`
    this.emptyHint.textContent = this.loaded ? `No messages in #${this.topic} yet. Say hello!` : 'Loading messages…'
  }

  /** @private */
  async loadOlder () {
    const oldest = this.log.oldestId
    if (this.loadingOlder || this.reachedStart || oldest === undefined || this.hooks.connection() === undefined) return
    const { topic } = this
    this.loadingOlder = true
    this.showEdge()
    let loaded = false
    try {
      const { messages } = await olderMessages(topic, oldest, olderPageSize)
      if (topic !== this.topic) return
      this.log.add(messages, { older: true })
      if (messages.length < olderPageSize || this.log.oldestId === 1) this.reachedStart = true
      loaded = true
    } catch (error) {
      if (error.status === 401) {
        this.hooks.sessionEnded()
        return
      }
      // The button stays for another try.
    } finally {
      this.loadingOlder = false
      if (topic === this.topic) this.showEdge()
    }
    if (loaded) this.fillViewport()
  }

  /** @private Loads older messages until the log can scroll, so there is always a top to scroll to. */
  fillViewport () {
    if (!this.log.scrollable) void this.loadOlder()
  }
}
