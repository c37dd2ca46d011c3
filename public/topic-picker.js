import { defaultTopic, topicPattern } from '/protocol.js'
import { storage } from './storage.js'

/**
 * The topic picker: the open topic lives in the URL hash, a form joins another, and the
 * topics this browser visited last are links.
 */

const maxRecentTopics = 10
const recentTopicsKey = 'canopy.recentTopics'

const byId = (id) => document.getElementById(id)

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

function recentTopics () {
  try {
    const topics = JSON.parse(storage.get(recentTopicsKey) ?? '[]')
    if (Array.isArray(topics)) return topics.filter((topic) => typeof topic === 'string' && topicPattern.test(topic))
  } catch { /* a damaged list starts afresh */ }
  return []
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
    this.recentList = byId('recent-topics')
    this.title = byId('room-title')

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
      this.topic = topic
      this.hooks.switched(topic)
    })
    this.form.addEventListener('submit', (event) => {
      event.preventDefault()
      this.join(this.input.value.trim().replace(/^#/, '').toLowerCase())
    })
  }

  /** Shows the open topic: its title, and first among the recent ones. */
  show () {
    const { topic } = this
    const topics = [topic, ...recentTopics().filter((other) => other !== topic)].slice(0, maxRecentTopics)
    if (!topics.includes(defaultTopic)) topics.push(defaultTopic)
    storage.set(recentTopicsKey, JSON.stringify(topics))
    this.recentList.replaceChildren(...topics.toSorted().map((name) => {
      const link = document.createElement('a')
      link.href = `#${name}`
      link.textContent = `#${name}`
      if (name === topic) link.setAttribute('aria-current', 'page')
      const item = document.createElement('li')
      item.append(link)
      return item
    }))
    this.title.textContent = `#${topic}`
    document.title = `#${topic} · Canopy`
  }

  /** @private */
  join (topic) {
    if (!topicPattern.test(topic)) {
      this.error.textContent = 'A topic is up to 64 characters: a–z, 0–9, _ . or -, starting with a letter or digit.'
      this.input.setAttribute('aria-invalid', 'true')
      this.input.focus()
      return
    }
    this.error.textContent = ''
    this.input.removeAttribute('aria-invalid')
    this.input.value = ''
    location.hash = `#${topic}`
    this.hooks.joined()
  }
}
