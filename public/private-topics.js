import { directMessage, removeMember } from './api.js'
import { isDirect } from './topic-label.js'

/**
 * The reader's membership of private topics and direct messages, as the socket tells it and
 * as the reader changes it: `added` shows a topic at once, `unsubscribed` with reason
 * `removed` and a `forbidden` refusal take one away (leaving it if it was open, and saying
 * so), the reader leaves one, and a name starts a direct message. What the page knows of
 * each topic lives in the store (topic-store.js); this module turns frames and clicks into
 * its changes, and says what happened in plain words.
 */

export class PrivateTopics {
  /**
   * @param {import('./topic-store.js').TopicStore} store
   * @param {{
   *   notice: import('./page-notice.js').PageNotice,
   *   opened: () => void,
   *   sessionEnded: () => void
   * }} listeners opened: a direct message was opened from a name
   */
  constructor (store, listeners) {
    this.store = store
    this.listeners = listeners
    /** @type {Set<string>} topics the reader is leaving: the server's `unsubscribed` for them is their own doing */
    this.leaving = new Set()

    store.on('open', () => { listeners.notice.clear() })
    store.on('added', (topic, by) => {
      // The one who started it needs no telling.
      if (by.toLowerCase() === store.reader.toLowerCase()) return
      listeners.notice.show(isDirect(store, topic) ? `${by} started a direct message with you.` : `${by} added you to #${topic}.`)
    })
    store.on('removed', (topic, reason, wasOpen) => {
      this.leaving.delete(topic)
      if (reason === 'removed') listeners.notice.show(`You were removed from #${topic}: only its members can read it.`, 'warning')
      else if (reason === 'left' && wasOpen) listeners.notice.show(`You left #${topic}.`)
      else if (reason === 'forbidden' && wasOpen) listeners.notice.show(`#${topic} is private: only its members can read it.`, 'warning')
    })
  }

  /**
   * A frame of the socket about membership: `added`, `unsubscribed` for a removal, a
   * `forbidden` refusal of a subscribe. Returns whether it was one.
   * @param {{ type: string, topic?: string, by?: string, reason?: string, code?: string, ref?: string }} frame
   */
  frame (frame) {
    if (typeof frame.topic !== 'string') return false
    if (frame.type === 'added') {
      this.store.added(frame.topic, typeof frame.by === 'string' ? frame.by : '')
      return true
    }
    if (frame.type === 'unsubscribed' && frame.reason === 'removed') {
      this.store.removed(frame.topic, this.leaving.has(frame.topic) ? 'left' : 'removed')
      return true
    }
    if (frame.type === 'error' && frame.code === 'forbidden' && frame.ref === undefined) {
      this.store.removed(frame.topic, 'forbidden')
      return true
    }
    return false
  }

  /**
   * The reader leaves the private topic `topic` (the server refuses the last owner while
   * others stay: the ApiError says so, with code `last_owner`).
   */
  async leave (topic) {
    this.leaving.add(topic)
    try {
      await removeMember(topic, this.store.reader)
    } catch (error) {
      this.leaving.delete(topic)
      throw error
    }
    this.store.removed(topic, 'left')
  }

  /** Opens the direct message of the reader and `name`, started if it was not. */
  async message (name) {
    let topic
    try {
      ({ topic } = await directMessage([name]))
    } catch (error) {
      if (error.status === 401) this.listeners.sessionEnded()
      else this.listeners.notice.show(`No direct message with ${name}: ${error.message}`, 'warning')
      return
    }
    this.store.describe(topic.name, { visibility: 'private', kind: 'dm', members: topic.members })
    if (this.store.open !== topic.name) this.store.openTopic(topic.name)
    this.listeners.opened()
  }
}
