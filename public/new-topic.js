import { topicPattern } from '/protocol.js'
import { createTopic } from './api.js'
import { byId } from './dom.js'
import { directMessagePrefix } from './topic-label.js'

/**
 * The form that creates a topic on purpose, private (only the members its owner adds may read
 * it) or public, with the reader as its owner; a public topic also comes into being by
 * joining it by name. The topic opens once the server has made it.
 */

export class NewTopic {
  /**
   * @param {import('./topic-store.js').TopicStore} store
   * @param {{ created: () => void, sessionEnded: () => void }} listeners created: the new topic is open
   */
  constructor (store, listeners) {
    this.store = store
    this.listeners = listeners
    this.toggle = byId('new-topic-toggle')
    this.form = byId('new-topic-form')
    this.input = byId('new-topic-name')
    this.error = byId('new-topic-error')

    this.toggle.addEventListener('click', () => { this.show(this.form.hidden) })
    byId('new-topic-cancel').addEventListener('click', () => {
      this.show(false)
      this.toggle.focus()
    })
    this.form.addEventListener('keydown', (event) => {
      if (event.key !== 'Escape') return
      // Not also the panel's Escape, which would fold the list away.
      event.stopPropagation()
      this.show(false)
      this.toggle.focus()
    })
    this.input.addEventListener('input', () => { this.showError('') })
    this.form.addEventListener('submit', (event) => {
      event.preventDefault()
      void this.create()
    })
    store.on('reset', () => { this.show(false) })
  }

  /** @private Unfolds the form (its name input focused) or folds it away. */
  show (shown) {
    this.form.hidden = !shown
    this.toggle.setAttribute('aria-expanded', String(shown))
    if (shown) {
      this.input.focus()
      return
    }
    this.input.value = ''
    this.showError('')
  }

  /** @private */
  async create () {
    const name = this.input.value.trim().replace(/^#/, '').toLowerCase()
    const visibility = new FormData(this.form).get('visibility') === 'public' ? 'public' : 'private'
    const problem = !topicPattern.test(name)
      ? 'A topic is up to 64 characters: a–z, 0–9, _ . or -, starting with a letter or digit.'
      : name.startsWith(directMessagePrefix) ? `Names that begin with “${directMessagePrefix}” are kept for direct messages.` : ''
    if (problem !== '') {
      this.showError(problem)
      this.input.focus()
      return
    }
    this.showError('')
    const button = /** @type {HTMLButtonElement} */ (this.form.querySelector('button[type="submit"]'))
    button.disabled = true
    try {
      const { topic } = await createTopic(name, visibility)
      this.show(false)
      this.store.describe(topic.name, { visibility: topic.visibility })
      this.store.openTopic(topic.name)
      this.listeners.created()
    } catch (error) {
      if (error.status === 401) {
        this.listeners.sessionEnded()
        return
      }
      this.showError(error.code === 'topic_exists'
        ? `There is already a topic called #${name}. Choose another name${visibility === 'public' ? ', or join that one by its name above' : ''}.`
        : error.message)
      this.input.focus()
    } finally {
      button.disabled = false
    }
  }

  /** @private */
  showError (message) {
    this.error.textContent = message
    if (message === '') this.input.removeAttribute('aria-invalid')
    else this.input.setAttribute('aria-invalid', 'true')
  }
}
