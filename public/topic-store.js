import { defaultTopic, maxJoinedTopics, maxListedTopics, maxUnreadCount, topicPattern } from '/protocol.js'
import { storage, storedList } from './storage.js'

/**
 * The page's state, with one owner: the open topic, the topics the reader has joined, the
 * server's other topics, and each topic's unread count and read position. The views and the
 * parts that talk to the server read it here and listen for its events (`on`); none keeps a
 * copy. It knows nothing of the socket, the DOM or the URL, so that each of those can change
 * without it.
 *
 * A topic is joined once the reader opens it in this browser, or reads it anywhere (the
 * server then counts fewer unread messages than the topic holds). Its messages count as
 * unread until it is open in a visible tab. Public topics have no membership on the server,
 * so leaving one is this browser's: it moves to the other topics and is no longer joined by
 * the read position the server keeps for it, until the reader opens it here again. The
 * default topic, where the page starts, cannot be left. A private topic or a direct message is
 * joined while the reader is one of its members: the server lists it, `added` brings it at
 * once, and it goes when the reader leaves it or is removed (`removed`); it is never left
 * here only.
 *
 * Opening a topic with unread messages draws a line where they begin (the `unread-line`
 * event): after the read position the server had before the page moved it, so after a reload
 * the position is only moved once the server has said where it was.
 *
 * Events, each with its listeners' arguments:
 * - `open` (topic): another topic is open; its log starts empty
 * - `leave` (topic): the reader left a joined topic
 * - `unread-line` (topic, readId): the open topic's unread messages begin after message readId
 * - `read` (topic): the reader has seen `topic` up to `counts(topic).readTo`: the server is to be told
 * - `added` (topic, by): `by` made the reader a member of the private topic or direct message `topic`
 * - `removed` (topic, reason, wasOpen): the reader is no longer a member of `topic` ('removed',
 *   'left', or 'forbidden': never was); if it was open, the default topic is open now
 * - `reset` (): logged out; nothing is known any more
 * - `change` (): something shown changed (the lists, a count, the open topic)
 */

const joinedTopicsKey = 'canopy.joinedTopics'
/** What this page kept before topics were joined: the topics visited last, joined now. */
const recentTopicsKey = 'canopy.recentTopics'
/** The topics the reader left in this browser: their read position on the server no longer joins them. */
const leftTopicsKey = 'canopy.leftTopics'

/**
 * @typedef {object} TopicCounts what the page knows of one topic's messages and the reader's place in them
 * @property {number | undefined} lastId the newest message known: 0 for a topic known to be empty, undefined when unknown
 * @property {number} unread
 * @property {Set<number>} counted messages counted as unread after the server's last count
 * @property {number | undefined} readId the reader's read position as the server last said it (0: not known,
 *   older than every unread message counted), or as moved here since; undefined while unknown or never read
 * @property {number} readTo the newest message the reader has been shown
 */

/**
 * @typedef {object} TopicInfo what the server said of a topic beyond its messages
 * @property {'public' | 'private'} visibility
 * @property {'dm'} [kind] 'dm' for a direct message
 * @property {string[]} [members] a direct message's members, the reader included
 */

/** The topic names kept under the first of `keys` that holds a list. */
const storedTopics = (...keys) => storedList(keys, (topic) => topicPattern.test(topic))

export class TopicStore {
  /** @param {{ visible: boolean }} options visible: the tab is shown now */
  constructor ({ visible }) {
    /** @type {Map<string, Set<(...args: any[]) => void>>} */
    this.listeners = new Map()
    /** The open topic; '' while none is (logged out). */
    this.open = ''
    /**
     * Counts the topics opened: an answer to an earlier opening (of a topic left since, or of
     * the same one before it was left) is not the open topic's history.
     */
    this.openings = 0
    /** Whether the page is in front of the reader (the tab is visible). */
    this.visible = visible
    /** @type {Map<string, TopicCounts>} */
    this.topics = new Map()
    /** @type {Set<string>} */
    this.joined = new Set([defaultTopic, ...storedTopics(joinedTopicsKey, recentTopicsKey)])
    /** @type {Set<string>} */
    this.left = new Set(storedTopics(leftTopicsKey))
    /** The server's topics, most recently active first. @type {string[]} */
    this.listed = []
    /** The server has listed the topics since the reader logged in: read positions are known. */
    this.listedOnce = false
    /** @type {string | undefined} the open topic, whose unread line waits for the server's read position */
    this.lineAwaited = undefined
    /** The reader's name, set once logged in; '' while logged out. */
    this.reader = ''
    /** @type {Map<string, TopicInfo>} */
    this.infos = new Map()
  }

  /** Calls `listener` on each `event` (see above). */
  on (event, listener) {
    let listeners = this.listeners.get(event)
    if (listeners === undefined) this.listeners.set(event, listeners = new Set())
    listeners.add(listener)
  }

  /** @private */
  emit (event, ...args) {
    for (const listener of this.listeners.get(event) ?? []) listener(...args)
  }

  /** Whether the open topic is in front of the reader. */
  get reading () {
    return this.open !== '' && this.visible
  }

  /** @returns {TopicCounts} */
  counts (topic) {
    let counts = this.topics.get(topic)
    if (counts === undefined) {
      counts = { lastId: undefined, unread: 0, counted: new Set(), readId: undefined, readTo: 0 }
      this.topics.set(topic, counts)
    }
    return counts
  }

  /** The unread count of `topic`, 0 when nothing is known. */
  unread (topic) {
    return this.topics.get(topic)?.unread ?? 0
  }

  /** The unread messages of every joined topic. */
  get totalUnread () {
    let total = 0
    for (const name of this.joined) total += this.unread(name)
    return total
  }

  /** Joined topics by name, so that each keeps its place. */
  joinedNames () {
    return [...this.joined].sort()
  }

  /** What the server said of `topic` (it created it, started a direct message). @param {Partial<TopicInfo>} info */
  describe (topic, info) {
    this.infos.set(topic, { visibility: 'public', ...this.infos.get(topic), ...info })
    this.emit('change')
  }

  /** `by` made the reader a member of `topic`: joined at once. */
  added (topic, by) {
    this.infos.set(topic, { ...this.infos.get(topic), visibility: 'private' })
    this.join(topic)
    this.emit('added', topic, by)
    this.emit('change')
  }

  /**
   * The reader is no longer a member of `topic` (the `removed` event). Told twice (the answer
   * to the reader's own leave, then the server's frame), it acts once.
   * @param {string} topic @param {'removed' | 'left' | 'forbidden'} reason
   */
  removed (topic, reason) {
    const wasOpen = topic === this.open
    if (topic === defaultTopic || (!wasOpen && !this.joined.has(topic) && !this.infos.has(topic))) return
    this.joined.delete(topic)
    this.persist()
    this.topics.delete(topic)
    this.infos.delete(topic)
    this.listed = this.listed.filter((name) => name !== topic)
    if (wasOpen) this.openTopic(defaultTopic)
    this.emit('removed', topic, reason, wasOpen)
    this.emit('change')
  }

  /** Logged out: no topic is open, nothing is known, and this browser forgets the topics joined. */
  reset () {
    this.topics.clear()
    this.infos.clear()
    this.reader = ''
    this.joined = new Set([defaultTopic])
    this.left.clear()
    this.listed = []
    this.open = ''
    this.listedOnce = false
    this.lineAwaited = undefined
    storage.remove(joinedTopicsKey)
    storage.remove(recentTopicsKey)
    storage.remove(leftTopicsKey)
    this.emit('reset')
    this.emit('change')
  }

  /** The tab was shown or hidden: what came while it was hidden is new, and the line moves to where it begins. */
  setVisible (visible) {
    this.visible = visible
    if (!this.reading) return
    this.showUnreadLine(this.open)
    this.read(this.open)
    this.emit('change')
  }

  /**
   * `topic` is open now: joined, and nothing unread while the tab is visible. The server is
   * told once its messages are shown (`received`).
   */
  openTopic (topic) {
    this.open = topic
    this.openings += 1
    this.join(topic)
    this.lineAwaited = undefined
    // First, so that the log is emptied before a line is drawn in it.
    this.emit('open', topic)
    if (this.reading) {
      if (this.listedOnce) this.showUnreadLine(topic)
      else this.lineAwaited = topic
      const counts = this.counts(topic)
      counts.unread = 0
      counts.counted.clear()
    }
    this.emit('change')
  }

  /**
   * Leaves a joined topic (not the default one): no longer counted, and kept out of the
   * joined topics in this browser until it is opened again. Leaving the open topic opens the
   * default one.
   * @param {string} topic
   */
  leave (topic) {
    if (topic === defaultTopic || this.infos.get(topic)?.visibility === 'private' || !this.joined.delete(topic)) return
    this.left.add(topic)
    this.persist()
    const counts = this.topics.get(topic)
    if (counts !== undefined) {
      counts.unread = 0
      counts.counted.clear()
      // With the other topics of the server, where it can be opened again, even before the list is asked for again.
      if ((counts.lastId ?? 0) > 0 && !this.listed.includes(topic)) this.listed.unshift(topic)
    }
    this.emit('leave', topic)
    if (topic === this.open) this.openTopic(defaultTopic)
    this.emit('change')
  }

  /**
   * Messages of `topic`, live or in a `subscribed` frame: counted as unread unless the topic
   * is being read, which moves the read position to them instead.
   * @param {string} topic
   * @param {Array<{ id: number }>} messages in increasing id order
   */
  received (topic, messages) {
    const counts = this.counts(topic)
    const reading = this.reading && topic === this.open
    for (const { id } of messages) {
      // With no count from the server yet, what comes is where counting starts.
      if (counts.lastId !== undefined && id > counts.lastId && !reading) {
        counts.unread += 1
        counts.counted.add(id)
      }
      counts.lastId = Math.max(counts.lastId ?? id, id)
    }
    if (reading) this.read(topic)
    this.emit('change')
  }

  /**
   * The server's list of topics (GET /api/topics), with the reader's unread counts. Counts
   * made here since the server's last answer are kept for the messages it did not know of yet.
   * Each private topic and direct message listed is one the reader is a member of: joined.
   * @param {Array<{ name: string, lastId: number, unread: number } & Partial<TopicInfo>>} topics
   */
  listing (topics) {
    this.listed = topics.map((topic) => topic.name)
    for (const topic of topics) {
      if (topic.visibility !== undefined) this.infos.set(topic.name, { visibility: topic.visibility, kind: topic.kind, members: topic.members })
      if (topic.visibility === 'private') this.join(topic.name)
      const counts = this.counts(topic.name)
      // A count the server capped says only that the position is further back than the messages counted.
      // A topic never read has none: all of it is new, and no line is drawn.
      const serverReadId = topic.unread >= maxUnreadCount ? 0 : topic.lastId - topic.unread
      const readId = serverReadId > 0 || topic.unread >= maxUnreadCount ? serverReadId : undefined
      if (topic.name === this.lineAwaited && topic.unread > 0 && readId !== undefined) this.emit('unread-line', topic.name, readId)
      counts.readId = counts.readTo > 0 ? Math.max(readId ?? 0, counts.readTo) : readId
      const after = [...counts.counted].filter((id) => id > topic.lastId)
      const read = (this.reading && topic.name === this.open) || topic.lastId <= counts.readTo
      counts.unread = (read ? 0 : topic.unread) + after.length
      counts.counted = new Set(after)
      counts.lastId = Math.max(topic.lastId, counts.lastId ?? 0)
      // Fewer unread than messages: the reader has a read position, from this device or another.
      if (topic.unread < Math.min(topic.lastId, maxUnreadCount) && !this.left.has(topic.name)) this.join(topic.name)
    }
    this.lineAwaited = undefined
    this.listedOnce = true
    // Held back until the server had said where the reader was (for the line).
    if (this.reading) this.read(this.open)
    // The server lists every joined topic (up to maxJoinedTopics), with messages or not; one
    // missing from a list below both caps has no messages yet.
    if (topics.length < maxJoinedTopics + maxListedTopics) {
      for (const name of this.joined) this.counts(name).lastId ??= 0
    }
    this.emit('change')
  }

  /** @private Tells of the line where `topic`'s unread messages begin, when it has any. */
  showUnreadLine (topic) {
    const counts = this.counts(topic)
    if (counts.unread > 0 && counts.readId !== undefined) this.emit('unread-line', topic, counts.readId)
  }

  /** @private The reader has seen `topic` up to its newest message: nothing unread, and the server is to be told. */
  read (topic) {
    const counts = this.counts(topic)
    counts.unread = 0
    counts.counted.clear()
    if (counts.lastId !== undefined && counts.lastId > counts.readTo) {
      counts.readTo = counts.lastId
      counts.readId = counts.lastId
    }
    // Not before the server has told the position it had: the line where unread messages begin is drawn from it.
    if (this.listedOnce) this.emit('read', topic)
  }

  /** @private */
  join (topic) {
    if (this.joined.has(topic)) return
    this.joined.add(topic)
    this.left.delete(topic)
    this.persist()
  }

  /** @private */
  persist () {
    storage.set(joinedTopicsKey, JSON.stringify([...this.joined]))
    storage.set(leftTopicsKey, JSON.stringify([...this.left]))
  }
}
