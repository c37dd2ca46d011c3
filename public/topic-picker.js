import { defaultTopic, topicPattern } from '/protocol.js'
import { byId } from './dom.js'

/**
 * The open topic: it lives in the URL hash, so links, the back button and bookmarks open
 * topics, and the form joins one by name. The topic list (topic-list.js) shows the topics.
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
   * @param {{ switched: (topic: string) => void, joined: () => void }} hooks switched: the
   *   hash names another topic; joined: the form sent the reader to a topic
   */
  constructor (hooks) {
    this.hooks = hooks
    this.form = byId('topic-form')
    this.input = byId('topic-input')
    this.error = byId('topic-error')

    const initial = topicFromHash()
    if (initial === undefined) history.replaceState(null, '', `#${defaultTopic}`)
    /** The open topic. */
    this.topic = initial ?? defaultTopic

    window.addEventListener('hashchange', () => {
      const topic = topicFromHash()
      if (topic === undefined) {
        history.replaceState(null, '', `#${this.topic}`)
        return
      }
      if (topic === this.topic) return
      // Moving on (by a link, the back button): a mistake typed for the last one no longer applies.
      this.showError('')
      this.topic = topic
      this.hooks.switched(topic)
    })
    this.input.addEventListener('input', () => { this.showError('') })
    this.form.addEventListener('submit', (event) => {
      event.preventDefault()
      this.join(this.input.value.trim().replace(/^#/, '').toLowerCase())
    })
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
    this.hooks.joined()
  }

  /** @private */
  showError (message) {
    this.error.textContent = message
    if (message === '') this.input.removeAttribute('aria-invalid')
    else this.input.setAttribute('aria-invalid', 'true')
  }
}
