import { defaultTopic, maxJoinedTopics, maxListedTopics, maxTopicsPerConnection, maxUnreadCount, topicPattern } from '/protocol.js'
import { markRead, topicSummaries } from './api.js'
import { storage } from './storage.js'
import { byId } from './dom.js'

/**
 * The topic list: the topics the reader has joined, each with its unread count, live, and
 * the other topics of the server, most recently active first. The total is in the tab's
 * title. Read positions live on the server (GET /api/topics counts from them, PUT …/read
 * moves them), so they follow the reader to every device.
 *
 * A topic is joined once the reader opens it in this browser, or reads it anywhere (the
 * server then counts fewer unread messages than the topic holds). Every joined topic is
 * subscribed on the page's one socket; its live messages count as unread until it is open
 * in a visible tab.
 *
 * Public topics have no membership on the server, so leaving one is this browser's: the
 * topic is unsubscribed, moves to the other topics, and is no longer joined by the read
 * position the server keeps for it, until the reader opens it here again. The default
 * topic, where the page starts, cannot be left.
 *
 * Opening a topic with unread messages draws a line where they begin (the `unreadLine`
 * hook): after the read position the server had before the page moved it, so after a
 * reload the position is only moved once the server has said where it was.
 */

const joinedTopicsKey = 'canopy.joinedTopics'
/** What this page kept before topics were joined: the topics visited last, joined now. */
const recentTopicsKey = 'canopy.recentTopics'
/** The topics the reader left in this browser: their read position on the server no longer joins them. */
const leftTopicsKey = 'canopy.leftTopics'
/** While connected and visible, the list is asked for again this often, for topics new to the reader. */
const refreshMs = 60_000
/** The tag of a subscribe for an unread count, not for the open topic's log. */
export const countingTag = 'counting'

/**
 * @typedef {object} TopicState
 * @property {number | undefined} lastId the newest message known: 0 for a topic known to be empty, undefined when unknown
 * @property {number} unread
 * @property {Set<number>} counted messages counted as unread after the server's last count
 * @property {number | undefined} readId the reader's read position as the server last said it (0: not known,
 *   older than every unread message counted), or as moved here since; undefined while unknown or never read
 * @property {number} readTo the newest message the reader has been shown and the server told of
 * @property {number} readSent the newest one the server has confirmed
 * @property {boolean} sending a PUT …/read is on its way
 */

/** The first of these keys that holds a list of topic names. */
function storedTopics (...keys) {
  for (const key of keys) {
    try {
      const topics = JSON.parse(storage.get(key) ?? 'null')
      if (Array.isArray(topics)) return topics.filter((topic) => typeof topic === 'string' && topicPattern.test(topic))
    } catch { /* a damaged list starts afresh */ }
  }
  return []
}

/** The × of a close button, as in index.html. */
function crossIcon () {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg')
  svg.setAttribute('class', 'icon')
  svg.setAttribute('viewBox', '0 0 24 24')
  svg.setAttribute('aria-hidden', 'true')
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path')
  path.setAttribute('d', 'M6 6l12 12M18 6L6 18')
  svg.append(path)
  return svg
}

/** An unread count as shown: the server stops counting at maxUnreadCount. */
function countText (count) {
  return count >= maxUnreadCount ? `${maxUnreadCount - 1}+` : String(count)
}

export class TopicList {
  /**
   * @param {{
   *   connection: () => import('./connection.js').ChatConnection | undefined,
   *   sessionEnded: () => void,
   *   unreadLine: (topic: string, readId: number) => void,
   *   leave: (topic: string) => void
   * }} hooks unreadLine: the open topic's unread messages begin after message `readId`;
   *   leave: the reader left `topic`, which is the open one: open another
   */
  constructor (hooks) {
    this.hooks = hooks
    this.joinedList = byId('joined-topics')
    this.moreList = byId('more-topics')
    this.moreHeading = byId('more-topics-heading')
    this.totalBadge = byId('topics-unread')
    this.totalCount = byId('topics-unread-count')
    /** @type {Map<string, TopicState>} */
    this.topics = new Map()
    /** @type {Set<string>} */
    this.joined = new Set([defaultTopic, ...storedTopics(joinedTopicsKey, recentTopicsKey)])
    /** @type {Set<string>} */
    this.left = new Set(storedTopics(leftTopicsKey))
    /** The server has answered GET /api/topics since the reader logged in: read positions are known. */
    this.listedOnce = false
    /** @type {string | undefined} the open topic, whose unread line waits for the server's read position */
    this.lineAwaited = undefined
    /** The server's topics, most recently active first. @type {string[]} */
    this.listed = []
    /** @type {Map<string, HTMLLIElement>} each topic's item, kept so that focus stays on it across updates */
    this.items = new Map()
    this.open = ''
    /** @type {Promise<boolean> | undefined} */
    this.refreshing = undefined

    document.addEventListener('visibilitychange', () => {
      if (!this.reading) return
      // What came while the tab was hidden is new: the line moves to where it begins.
      this.showUnreadLine(this.open)
      this.read(this.open)
      this.render()
    })
    setInterval(() => {
      if (this.reading && this.hooks.connection()?.open === true) void this.refresh().then((counted) => { this.subscribeJoined(counted) })
    }, refreshMs)
  }

  /** Whether the open topic is in front of the reader. */
  get reading () {
    return this.open !== '' && document.visibilityState === 'visible'
  }

  /** Logged out: nothing is known, and this browser forgets the topics joined. */
  reset () {
    this.topics.clear()
    this.joined = new Set([defaultTopic])
    this.left.clear()
    this.listed = []
    this.open = ''
    this.listedOnce = false
    this.lineAwaited = undefined
    storage.remove(joinedTopicsKey)
    storage.remove(recentTopicsKey)
    storage.remove(leftTopicsKey)
    this.render()
  }

  /**
   * `topic` is open now: joined, and nothing unread while the tab is visible. The server is
   * told once its messages are shown (`received`).
   */
  openTopic (topic) {
    this.open = topic
    this.join(topic)
    this.lineAwaited = undefined
    if (this.reading) {
      if (this.listedOnce) this.showUnreadLine(topic)
      else this.lineAwaited = topic
      const state = this.state(topic)
      state.unread = 0
      state.counted.clear()
    }
    this.render()
  }

  /**
   * Leaves a joined topic (not the default one): unsubscribed, no longer counted, and kept
   * out of the joined topics in this browser until it is opened again.
   * @param {string} topic
   */
  leave (topic) {
    if (topic === defaultTopic || !this.joined.delete(topic)) return
    this.left.add(topic)
    this.store()
    const state = this.topics.get(topic)
    if (state !== undefined) {
      state.unread = 0
      state.counted.clear()
      // With the other topics of the server, where it can be opened again, even before the list is asked for again.
      if ((state.lastId ?? 0) > 0 && !this.listed.includes(topic)) this.listed.unshift(topic)
    }
    this.hooks.connection()?.unsubscribe(topic)
    if (topic === this.open) this.hooks.leave(topic)
    this.render()
  }

  /** @private Tells of the line where `topic`'s unread messages begin, when it has any. */
  showUnreadLine (topic) {
    const state = this.state(topic)
    if (state.unread > 0 && state.readId !== undefined) this.hooks.unreadLine(topic, state.readId)
  }

  /**
   * A socket opened: the counts are asked for again, then every joined topic is subscribed
   * from the newest message counted, so that what came meanwhile is counted once.
   */
  async connected () {
    const connection = this.hooks.connection()
    const socket = connection?.socketCount
    const counted = await this.refresh()
    if (connection === undefined || connection !== this.hooks.connection() || connection.socketCount !== socket) return
    this.subscribeJoined(counted)
  }

  /**
   * Messages of `topic`, live or in a `subscribed` frame: counted as unread unless the topic
   * is being read, which moves the read position to them instead.
   * @param {string} topic
   * @param {Array<{ id: number }>} messages in increasing id order
   */
  received (topic, messages) {
    const state = this.state(topic)
    const reading = this.reading && topic === this.open
    for (const { id } of messages) {
      // With no count from the server yet, what comes is where counting starts.
      if (state.lastId !== undefined && id > state.lastId && !reading) {
        state.unread += 1
        state.counted.add(id)
      }
      state.lastId = Math.max(state.lastId ?? id, id)
    }
    if (reading) this.read(topic)
    this.render()
  }

  /**
   * A `subscribed` frame that was asked for counting: what it holds is counted, and a cut
   * reply (`truncated`) is continued from its last message.
   * @param {{ topic: string, history: Array<{ id: number }>, truncated?: true }} frame
   */
  counting (frame) {
    // Left while the subscribe was on its way.
    if (!this.joined.has(frame.topic)) return
    this.received(frame.topic, frame.history)
    const last = frame.history.at(-1)
    if (frame.truncated === true && last !== undefined) this.hooks.connection()?.subscribe(frame.topic, { since: last.id, tag: countingTag })
  }

  /**
   * @private
   * Asks the server for every topic and the reader's unread counts. Counts made here since the
   * server's last answer are kept for the messages it did not know of yet.
   * @returns {Promise<boolean>} whether the server answered
   */
  async refresh () {
    this.refreshing ??= (async () => {
      let topics
      try {
        ({ topics } = await topicSummaries())
      } catch (error) {
        if (error.status === 401) this.hooks.sessionEnded()
        return false
      } finally {
        this.refreshing = undefined
      }
      this.listed = topics.map((topic) => topic.name)
      for (const topic of topics) {
        const state = this.state(topic.name)
        // A count the server capped says only that the position is further back than the messages counted.
        // A topic never read has none: all of it is new, and no line is drawn.
        const serverReadId = topic.unread >= maxUnreadCount ? 0 : topic.lastId - topic.unread
        const readId = serverReadId > 0 || topic.unread >= maxUnreadCount ? serverReadId : undefined
        if (topic.name === this.lineAwaited && topic.unread > 0 && readId !== undefined) this.hooks.unreadLine(topic.name, readId)
        state.readId = state.readTo > 0 ? Math.max(readId ?? 0, state.readTo) : readId
        const after = [...state.counted].filter((id) => id > topic.lastId)
        const read = (this.reading && topic.name === this.open) || topic.lastId <= state.readTo
        state.unread = (read ? 0 : topic.unread) + after.length
        state.counted = new Set(after)
        state.lastId = Math.max(topic.lastId, state.lastId ?? 0)
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
        for (const name of this.joined) {
          const state = this.state(name)
          state.lastId ??= 0
        }
      }
      this.render()
      return true
    })()
    return await this.refreshing
  }

  /**
   * @private
   * Subscribes the socket to every joined topic it does not hold yet, for their counts: from
   * the newest message counted when the server has just counted (so the reply is short), else
   * for the most recent history only, rather than all that a stale count would ask for.
   */
  subscribeJoined (counted) {
    const connection = this.hooks.connection()
    if (connection?.open !== true) return
    let held = connection.topics.size
    for (const name of this.joinedNames()) {
      if (held >= maxTopicsPerConnection) return
      if (connection.has(name)) continue
      connection.subscribe(name, { since: counted ? this.state(name).lastId : undefined, tag: countingTag })
      held += 1
    }
  }

  /** @private The reader has seen `topic` up to its newest message: nothing unread, and the server is told. */
  read (topic) {
    const state = this.state(topic)
    state.unread = 0
    state.counted.clear()
    if (state.lastId !== undefined && state.lastId > state.readTo) {
      state.readTo = state.lastId
      state.readId = state.lastId
    }
    // Not before the server has told the position it had: the line where unread messages begin is drawn from it.
    if (this.listedOnce && state.readSent < state.readTo) void this.sendRead(topic, state)
  }

  /** @private One PUT at a time per topic; the newest position is sent once the one on its way is answered. */
  async sendRead (topic, state) {
    if (state.sending) return
    state.sending = true
    try {
      while (state.readSent < state.readTo) {
        const id = state.readTo
        await markRead(topic, id)
        state.readSent = id
      }
    } catch (error) {
      // Sent again with the next position; the count on the server stays until then.
      if (error.status === 401) this.hooks.sessionEnded()
    } finally {
      state.sending = false
    }
  }

  /** @private */
  join (topic) {
    if (this.joined.has(topic)) return
    this.joined.add(topic)
    this.left.delete(topic)
    this.store()
  }

  /** @private */
  store () {
    storage.set(joinedTopicsKey, JSON.stringify([...this.joined]))
    storage.set(leftTopicsKey, JSON.stringify([...this.left]))
  }

  /** @private @returns {TopicState} */
  state (topic) {
    let state = this.topics.get(topic)
    if (state === undefined) {
      state = { lastId: undefined, unread: 0, counted: new Set(), readId: undefined, readTo: 0, readSent: 0, sending: false }
      this.topics.set(topic, state)
    }
    return state
  }

  /** @private Joined topics by name, so that each keeps its place. */
  joinedNames () {
    return [...this.joined].sort()
  }

  /** @private The lists, the total in the title and on the button that unfolds the list. */
  render () {
    this.renderList(this.joinedList, this.joinedNames(), true)
    const more = this.listed.filter((name) => !this.joined.has(name))
    this.renderList(this.moreList, more, false)
    this.moreHeading.hidden = more.length === 0

    let total = 0
    for (const name of this.joined) total += this.topics.get(name)?.unread ?? 0
    this.totalBadge.hidden = total === 0
    this.totalCount.textContent = countText(total)
    if (this.open !== '') document.title = `${total > 0 ? `(${countText(total)}) ` : ''}#${this.open} · Canopy`
  }

  /** @private Puts the items of `names` in `list`, in order, moving only those out of place. */
  renderList (list, names, counted) {
    let next = list.firstElementChild
    for (const name of names) {
      const item = this.item(name)
      this.updateItem(item, name, counted)
      if (item === next) next = next.nextElementSibling
      else list.insertBefore(item, next)
    }
    while (next !== null) {
      const after = next.nextElementSibling
      next.remove()
      next = after
    }
  }

  /** @private */
  item (name) {
    let item = this.items.get(name)
    if (item !== undefined) return item
    item = document.createElement('li')
    const link = document.createElement('a')
    link.href = `#${name}`
    link.className = 'topic-link'
    link.dataset.topic = name
    const label = document.createElement('span')
    label.className = 'topic-name'
    label.textContent = `#${name}`
    // Cut with an ellipsis when long: the whole name shows on hover.
    label.title = `#${name}`
    const badge = document.createElement('span')
    badge.className = 'badge'
    const count = document.createElement('span')
    const unread = document.createElement('span')
    unread.className = 'visually-hidden'
    unread.textContent = ' unread'
    badge.append(count, unread)
    link.append(label, badge)
    const leave = document.createElement('button')
    leave.type = 'button'
    leave.className = 'button ghost icon-button topic-leave'
    leave.title = `Leave #${name}`
    leave.setAttribute('aria-label', `Leave #${name}`)
    leave.append(crossIcon())
    leave.addEventListener('click', () => { this.leaveFrom(item, name) })
    item.append(link, leave)
    this.items.set(name, item)
    return item
  }

  /** @private The reader left by the item's button: the focus goes to the next topic, or to the form. */
  leaveFrom (item, name) {
    const list = item.parentElement
    const index = list === null ? -1 : Array.prototype.indexOf.call(list.children, item)
    this.leave(name)
    const next = list?.children[Math.min(index, list.children.length - 1)]?.querySelector('a')
    ;(next ?? byId('topic-input')).focus()
  }

  /** @private */
  updateItem (item, name, counted) {
    const link = /** @type {HTMLAnchorElement} */ (item.firstElementChild)
    const unread = counted ? this.topics.get(name)?.unread ?? 0 : 0
    if (name === this.open) link.setAttribute('aria-current', 'page')
    else link.removeAttribute('aria-current')
    link.classList.toggle('has-unread', unread > 0)
    const leave = /** @type {HTMLButtonElement} */ (item.lastElementChild)
    leave.hidden = !counted || name === defaultTopic
    const badge = /** @type {HTMLElement} */ (link.lastElementChild)
    const count = /** @type {HTMLElement} */ (badge.firstElementChild)
    badge.hidden = unread === 0
    count.textContent = countText(unread)
  }
}
