import { maxMessageChars } from '/protocol.js'
import { byId } from './dom.js'

/**
 * The composer: Enter sends, Shift+Enter is a new line. A sent message shows at once in the
 * log as pending, and turns into the stored message when its ack comes. As the text nears the
 * server's limit (maxMessageChars, from /protocol.js), a counter says how much is left.
 */

/** The counter shows from this share of the limit on. */
const countFromShare = 0.9

/** The length the server counts: code points (a string's iterator yields one per code point) of what is sent. */
function sentLength (value) {
  return [...value.trimEnd()].length
}

const plural = (count, word) => `${count} ${word}${count === 1 ? '' : 's'}`

export class Composer {
  /**
   * @param {import('./message-log.js').MessageLog} log
   * @param {{ publish: (text: string) => { ref: string } | undefined }} listeners
   *   publish: queues the text for the open topic, returning its ref; undefined when there is no connection
   */
  constructor (log, listeners) {
    this.log = log
    this.listeners = listeners
    this.form = byId('composer')
    this.input = byId('message-input')
    this.error = byId('composer-error')
    this.count = byId('composer-count')
    /** @type {Map<string, HTMLLIElement>} the log item of each message in the outbox, by ref */
    this.pendingItems = new Map()

    this.input.addEventListener('keydown', (event) => {
      // Enter that ends an IME composition does not send.
      if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.keyCode === 229) return
      event.preventDefault()
      this.form.requestSubmit()
    })
    this.input.addEventListener('input', () => {
      this.showError('')
      this.showCount()
    })
    this.form.addEventListener('submit', (event) => {
      event.preventDefault()
      this.send()
    })
  }

  /** @param {string} label the open topic as the page names it (topic-label.js), in the empty box */
  showTopic (label) {
    this.input.placeholder = `Message ${label}`
  }

  focus () {
    this.input.focus()
  }

  /** Forgets the pending items: the log they were in was cleared. */
  clear () {
    this.pendingItems.clear()
    this.showError('')
  }

  /**
   * Shows as pending the publishes of the open topic kept from before (the outbox of a page
   * reloaded, or of a topic opened again) that are not shown yet.
   * @param {Array<{ ref: string, text?: string }>} entries
   */
  showPending (entries) {
    for (const entry of entries) {
      if (this.pendingItems.has(entry.ref) || typeof entry.text !== 'string') continue
      this.pendingItems.set(entry.ref, this.log.addPending(entry.text))
    }
  }

  /** @param {{ ref: string }} entry @param {{ id: number, at: string }} ack */
  acknowledged (entry, ack) {
    const item = this.pendingItems.get(entry.ref)
    this.pendingItems.delete(entry.ref)
    if (item !== undefined) this.log.acknowledge(item, ack.id, ack.at)
  }

  /** @param {{ ref: string }} entry @param {{ code: string }} error */
  retrying (entry, error) {
    const item = this.pendingItems.get(entry.ref)
    if (item === undefined) return
    this.log.retrying(item, error.code === 'rate_limited'
      ? 'Sending too fast: sending again in a moment…'
      : 'The server is busy: sending again shortly…')
  }

  /** @param {{ ref: string }} entry @param {{ message: string }} error */
  failed (entry, error) {
    const item = this.pendingItems.get(entry.ref)
    this.pendingItems.delete(entry.ref)
    if (item !== undefined) this.log.failed(item, error.message)
  }

  /** @private */
  send () {
    const text = this.input.value.trimEnd()
    if (text.trim() === '') return
    const length = sentLength(text)
    if (length > maxMessageChars) {
      this.showError(`A message is at most ${maxMessageChars} characters; this one has ${length}.`)
      return
    }
    const entry = this.listeners.publish(text)
    if (entry === undefined) return
    // Its ack cannot come before this: it answers a frame sent over the network.
    this.pendingItems.set(entry.ref, this.log.addPending(text))
    this.input.value = ''
    this.showCount()
    this.input.focus()
  }

  /** @private Characters left before the limit, once the text is near it; how many too many past it. */
  showCount () {
    const length = sentLength(this.input.value)
    const left = maxMessageChars - length
    this.count.hidden = length < maxMessageChars * countFromShare
    this.count.classList.toggle('over', left < 0)
    this.count.textContent = left >= 0 ? `${plural(left, 'character')} left` : `${plural(-left, 'character')} too many`
  }

  /** @private */
  showError (message) {
    this.error.textContent = message
    if (message === '') this.input.removeAttribute('aria-invalid')
    else this.input.setAttribute('aria-invalid', 'true')
  }
}
