import { maxMessageChars } from '/protocol.js'
import { byId } from './dom.js'

/**
 * The composer: Enter sends, Shift+Enter is a new line. A sent message shows at once in the
 * log as pending, and turns into the stored message when its ack comes.
 */

export class Composer {
  /**
   * @param {import('./message-log.js').MessageLog} log
   * @param {{ publish: (text: string) => import('./connection.js').OutboxEntry | undefined }} hooks
   *   publish: queues the text for the open topic; undefined when there is no connection
   */
  constructor (log, hooks) {
    this.log = log
    this.hooks = hooks
    this.form = byId('composer')
    this.input = byId('message-input')
    this.error = byId('composer-error')
    /** @type {Map<string, HTMLLIElement>} the log item of each message in the outbox, by ref */
    this.pendingItems = new Map()

    this.input.addEventListener('keydown', (event) => {
      // Enter that ends an IME composition does not send.
      if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.keyCode === 229) return
      event.preventDefault()
      this.form.requestSubmit()
    })
    this.input.addEventListener('input', () => { this.showError('') })
    this.form.addEventListener('submit', (event) => {
      event.preventDefault()
      this.send()
    })
  }

  /** @param {string} topic the open topic, named in the empty box */
  showTopic (topic) {
    this.input.placeholder = `Message #${topic}`
  }

  focus () {
    this.input.focus()
  }

  /** Forgets the pending items: the log they were in was cleared. */
  clear () {
    this.pendingItems.clear()
    this.showError('')
  }

  /** @param {import('./connection.js').OutboxEntry} entry @param {{ id: number, at: string }} ack */
  acknowledged (entry, ack) {
    const item = this.pendingItems.get(entry.ref)
    this.pendingItems.delete(entry.ref)
    if (item !== undefined) this.log.acknowledge(item, ack.id, ack.at)
  }

  /** @param {import('./connection.js').OutboxEntry} entry @param {{ code: string }} error */
  retrying (entry, error) {
    const item = this.pendingItems.get(entry.ref)
    if (item === undefined) return
    this.log.retrying(item, error.code === 'rate_limited'
      ? 'Sending too fast: sending again in a moment…'
      : 'The server is busy: sending again shortly…')
  }

  /** @param {import('./connection.js').OutboxEntry} entry @param {{ message: string }} error */
  failed (entry, error) {
    const item = this.pendingItems.get(entry.ref)
    this.pendingItems.delete(entry.ref)
    if (item !== undefined) this.log.failed(item, error.message)
  }

  /** @private */
  send () {
    const text = this.input.value.trimEnd()
    if (text.trim() === '') return
    // Code points, as the server counts them: a string's iterator yields one per code point.
    const length = [...text].length
    if (length > maxMessageChars) {
      this.showError(`A message is at most ${maxMessageChars} characters; this one has ${length}.`)
      return
    }
    const entry = this.hooks.publish(text)
    if (entry === undefined) return
    // Its ack cannot come before this: it answers a frame sent over the network.
    this.pendingItems.set(entry.ref, this.log.addPending(text))
    this.input.value = ''
    this.input.focus()
  }

  /** @private */
  showError (message) {
    this.error.textContent = message
    if (message === '') this.input.removeAttribute('aria-invalid')
    else this.input.setAttribute('aria-invalid', 'true')
  }
}
