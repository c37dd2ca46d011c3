import { appendWithLinks } from './links.js'

/**
 * The message log of one topic: messages in id order, each id once, the reader's own
 * messages pending until acknowledged, and notices (the server's errors). Every piece of user
 * data goes in as text nodes, never as HTML; web addresses become links (links.js).
 */

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' })
const dayTimeFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' })
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' })
/** Author colours: stylesheet classes hue-0 … hue-7. */
const hueCount = 8
/** Within this many pixels of the bottom, the log follows new messages. */
const stickyBottomPx = 64
/** Messages of one author this close together show the author's name once. */
const groupWithinMs = 5 * 60 * 1000

function element (tag, className, text) {
  const node = document.createElement(tag)
  if (className !== undefined) node.className = className
  if (text !== undefined) node.textContent = text
  return node
}

function timeElement (iso) {
  const date = new Date(iso)
  const now = new Date()
  const sameDay = date.toDateString() === now.toDateString()
  const time = element('time', 'time', (sameDay ? timeFormat : dayTimeFormat).format(date))
  time.dateTime = iso
  time.title = fullFormat.format(date)
  return time
}

/** The colour class of a user's avatar, the same wherever the user is shown. */
export function hueOf (name) {
  let hash = 0
  for (const char of name.toLowerCase()) hash = (hash * 31 + char.codePointAt(0)) >>> 0
  return `hue-${hash % hueCount}`
}

export class MessageLog {
  /**
   * @param {HTMLOListElement} list
   * @param {HTMLElement} scroller the scrolling box around the list
   */
  constructor (list, scroller) {
    this.list = list
    this.scroller = scroller
    /** @type {Map<number, HTMLLIElement>} */
    this.byId = new Map()
    /** The reader's name: their messages are marked as their own. */
    this.me = ''
    /** Whether the reader was at the bottom when last seen scrolling. */
    this.pinned = true
    /** @type {number | undefined} the unread messages begin after this id; undefined: no line */
    this.unreadAfter = undefined
    /** @type {HTMLLIElement | undefined} */
    this.unreadLine = undefined
    scroller.addEventListener('scroll', () => { this.pinned = this.atBottom }, { passive: true })
    // A log at the bottom stays there when its box shrinks (a phone's keyboard opening) and when
    // what it holds grows without a scroll: a line above the messages showing once they are in
    // ("This is the start of …"), a font arriving. Scroll anchoring does not cover a log that
    // did not scroll before, so a log that has just begun to overflow would hide its last message.
    const keepAtBottom = new ResizeObserver(() => { if (this.pinned) this.scrollToBottom() })
    keepAtBottom.observe(scroller)
    for (const part of scroller.children) keepAtBottom.observe(part)
  }

  clear () {
    this.list.replaceChildren()
    this.byId.clear()
    this.unreadAfter = undefined
    // What comes next starts at the bottom.
    this.pinned = true
  }

  get oldestId () {
    let oldest
    for (const id of this.byId.keys()) if (oldest === undefined || id < oldest) oldest = id
    return oldest
  }

  /** True when the reader is at (or near) the bottom, so new messages should follow. */
  get atBottom () {
    const { scrollTop, scrollHeight, clientHeight } = this.scroller
    return scrollHeight - scrollTop - clientHeight < stickyBottomPx
  }

  get scrollable () {
    return this.scroller.scrollHeight > this.scroller.clientHeight
  }

  scrollToBottom () {
    this.scroller.scrollTop = this.scroller.scrollHeight
  }

  /**
   * Adds stored messages (history or live), each id once, in id order.
   * @param {Array<{ id: number, author: string, text: string, at: string }>} messages
   * @param {{ older?: boolean }} [options] older: keep the reader's view where it is
   */
  add (messages, options = {}) {
    const follow = !options.older && this.atBottom
    const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop
    this.list.setAttribute('aria-busy', 'true')
    for (const message of messages) {
      if (this.byId.has(message.id)) continue
      const item = this.render(message.author, message.text)
      this.setStored(item, message.id, message.at)
      this.place(item, message.id)
      this.regroup(item)
    }
    this.placeUnreadLine()
    this.list.setAttribute('aria-busy', 'false')
    if (options.older) this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom
    else if (follow) this.scrollToBottom()
  }

  /**
   * Draws the line where the unread messages begin: before the first message after `readId`,
   * now and as older or newer messages come in.
   * @param {number} readId
   */
  markUnread (readId) {
    const follow = this.atBottom
    this.unreadAfter = readId
    this.placeUnreadLine()
    if (follow) this.scrollToBottom()
  }

  /** The reader's own message, shown at once and marked pending until its ack. */
  addPending (text) {
    const item = this.render(this.me, text)
    item.dataset.at = String(Date.now())
    item.classList.add('pending')
    this.setStatus(item, 'Sending…')
    this.list.append(item)
    this.regroup(item)
    this.scrollToBottom()
    return item
  }

  /** The ack of a pending message: now stored with `id`, unless that id is already shown. */
  acknowledge (item, id, at) {
    // A message of a topic left since is no longer shown.
    if (!item.isConnected) return
    const next = item.nextElementSibling
    if (this.byId.has(id)) {
      item.remove()
      this.regroup(next)
      return
    }
    const follow = this.atBottom
    item.classList.remove('pending', 'retrying')
    this.setStored(item, id, at)
    this.place(item, id)
    this.regroup(item)
    this.regroup(next)
    if (follow) this.scrollToBottom()
  }

  /** @param {HTMLLIElement} item @param {string} text why it is not sent yet, and that it will be */
  retrying (item, text) {
    item.classList.add('retrying')
    this.setStatus(item, text)
  }

  failed (item, message) {
    item.classList.remove('pending', 'retrying')
    item.classList.add('failed')
    this.setStatus(item, `Not sent: ${message}`)
    this.regroup(item)
  }

  /** A line that is not a message: what the server said went wrong. */
  notice (text) {
    const follow = this.atBottom
    const item = element('li', 'notice')
    item.append(element('span', 'notice-text', text), timeElement(new Date().toISOString()))
    this.list.append(item)
    if (follow) this.scrollToBottom()
  }

  /** @private */
  placeUnreadLine () {
    if (this.unreadAfter === undefined) return
    this.unreadLine ??= element('li', 'unread-line', 'New messages')
    let first
    for (const [id, item] of this.byId) {
      if (id > this.unreadAfter && (first === undefined || id < Number(first.dataset.id))) first = item
    }
    if (first === undefined || first.previousElementSibling === this.unreadLine) return
    const after = this.unreadLine.nextElementSibling
    this.list.insertBefore(this.unreadLine, first)
    // A message right after the line starts afresh; the one it left may continue its predecessor again.
    this.regroup(first)
    this.regroup(after)
  }

  /** @private */
  render (author, text) {
    const item = element('li', `message ${hueOf(author)}`)
    item.dataset.author = author
    if (author === this.me) item.classList.add('own')
    const avatar = element('span', 'avatar', [...author][0]?.toUpperCase() ?? '?')
    avatar.setAttribute('aria-hidden', 'true')
    const meta = element('div', 'meta')
    const name = element('span', 'author', author)
    name.title = author
    meta.append(name)
    const body = element('div', 'body')
    const paragraph = element('p', 'text')
    appendWithLinks(paragraph, text)
    body.append(meta, paragraph)
    item.append(avatar, body)
    return item
  }

  /** @private */
  setStored (item, id, at) {
    item.dataset.id = String(id)
    item.dataset.at = String(Date.parse(at))
    this.byId.set(id, item)
    const meta = item.querySelector('.meta')
    meta.querySelector('time')?.remove()
    meta.querySelector('.author').after(timeElement(at))
    // Stored: nothing to say any more. Only a pending or failed message is marked.
    meta.querySelector('.status')?.remove()
  }

  /**
   * @private
   * A message right after one of the same author, soon after it, continues it: no second
   * avatar and name. Looks at the item and at the one after it, whose predecessor changed.
   */
  regroup (item) {
    for (const node of [item, item?.nextElementSibling]) {
      if (node?.classList.contains('message') !== true) continue
      const previous = node.previousElementSibling
      // A message still pending or failed keeps its header, where its status shows.
      const continues = previous?.classList.contains('message') === true &&
        !previous.classList.contains('failed') && !node.matches('.pending, .failed') &&
        previous.dataset.author === node.dataset.author &&
        Math.abs(Number(node.dataset.at) - Number(previous.dataset.at)) < groupWithinMs
      node.classList.toggle('continued', continues)
    }
  }

  /** @private */
  setStatus (item, text) {
    const meta = item.querySelector('.meta')
    let status = meta.querySelector('.status')
    if (status === null) meta.append(status = element('span', 'status'))
    status.textContent = text
  }

  /**
   * @private
   * Puts a stored message after the last one with a smaller id and after the notices that
   * followed it, but before any larger id and before messages still pending.
   */
  place (item, id) {
    let before = null
    for (let node = this.list.lastElementChild; node !== null; node = node.previousElementSibling) {
      if (node === item) continue
      if (node.classList.contains('pending')) {
        before = node
      } else if (node.dataset.id !== undefined) {
        if (Number(node.dataset.id) < id) break
        before = node
      }
    }
    this.list.insertBefore(item, before)
  }
}
