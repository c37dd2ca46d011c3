import { defaultTopic, topicPattern } from '/protocol.js'
import { byId } from './dom.js'

/**
 * The open topic in the URL: the hash names it, so links, the back button and bookmarks open
 * topics, and the form joins one by name. The topic itself lives in the store
 * (topic-store.js): a hash the reader goes to opens its topic there, and a topic the store
 * opens (the default one, after the open topic was left) is written to the hash. While no
 * topic is open (logged out), the hash waits to be opened at the next login.
 */

/** The topic named by the URL hash, or undefined when it names none. */
function topicFromHash () {
  let name
  try {
    name = decodeURIComponent(location.hash.slice(1)).trim().toLowerCase()
  } catch {
    return undefined
  }
  return topicPattern.test(name) ? name : undefined
}

export class TopicPicker {
  /**
   * @param {import('./topic-store.js').TopicStore} store
   * @param {{ joined: () => void }} listeners joined: the form sent the reader to a topic
   */
  constructor (store, listeners) {
    this.store = store
    this.listeners = listeners
    this.form = byId('topic-form')
    this.input = byId('topic-input')
    this.error = byId('topic-error')

    if (topicFromHash() === undefined) history.replaceState(null, '', `#${defaultTopic}`)

    window.addEventListener('hashchange', () => {
      const topic = topicFromHash()
      if (topic === undefined) {
        history.replaceState(null, '', `#${this.store.open === '' ? defaultTopic : this.store.open}`)
        return
      }
      if (this.store.open === '' || topic === this.store.open) return
      // Moving on (by a link, the back button): a mistake typed for the last one no longer applies.
      this.showError('')
      this.store.openTopic(topic)
    })
    store.on('open', (topic) => {
      if (topicFromHash() !== topic) location.hash = `#${topic}`
    })
    this.input.addEventListener('input', () => { this.showError('') })
    this.form.addEventListener('submit', (event) => {
      event.preventDefault()
      this.join(this.input.value.trim().replace(/^#/, '').toLowerCase())
    })
  }

  /** The topic to open at login: the one the hash names, else the default one. */
  get topicInHash () {
    return topicFromHash() ?? defaultTopic
  }

  /** @private */
  join (topic) {
    if (!topicPattern.test(topic)) {
      this.showError('A topic is up to 64 characters: a–z, 0–9, _ . or -, starting with a letter or digit.')
      this.input.focus()
      return
    }
    this.showError('')
    this.input.value = ''
    location.hash = `#${topic}`
    this.listeners.joined()
  }

  /** @private */
  showError (message) {
    this.error.textContent = message
    if (message === '') this.input.removeAttribute('aria-invalid')
    else this.input.setAttribute('aria-invalid', 'true')
  }
}
