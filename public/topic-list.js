import { defaultTopic, maxUnreadCount } from '/protocol.js'
import { byId, crossPath, icon, lockPaths } from './dom.js'
import { isDirect, isPrivate, topicLabel } from './topic-label.js'

/**
 * The topic list, a view of the store (topic-store.js): the topics the reader has joined,
 * each with its unread count (a private one with a lock), the direct messages apart, under
 * the names of the people in them, and the other topics of the server, most recently active
 * first; the total is in the tab's title and on the button that unfolds the list. A joined
 * public topic but the default one has a button to leave it here (a private one is left in
 * its member list, on the server).
 */

const byName = new Intl.Collator(undefined, { sensitivity: 'base', numeric: true })

/** An unread count as shown: the server stops counting at maxUnreadCount. */
function countText (count) {
  return count >= maxUnreadCount ? `${maxUnreadCount - 1}+` : String(count)
}

export class TopicList {
  /** @param {import('./topic-store.js').TopicStore} store */
  constructor (store) {
    this.store = store
    this.joinedList = byId('joined-topics')
    this.directList = byId('dm-topics')
    this.directHeading = byId('dm-topics-heading')
    this.moreList = byId('more-topics')
    this.moreHeading = byId('more-topics-heading')
    this.totalBadge = byId('topics-unread')
    this.totalCount = byId('topics-unread-count')
    /** @type {Map<string, HTMLLIElement>} each topic's item, kept so that focus stays on it across updates */
    this.items = new Map()
    store.on('change', () => { this.render() })
  }

  /** @private The lists, the total in the title and on the button that unfolds the list. */
  render () {
    const { store } = this
    const joined = store.joinedNames()
    this.renderList(this.joinedList, joined.filter((name) => !isDirect(store, name)), true)
    const direct = joined.filter((name) => isDirect(store, name))
      .map((name) => ({ name, label: topicLabel(store, name) }))
      .sort((a, b) => byName.compare(a.label, b.label))
      .map(({ name }) => name)
    this.renderList(this.directList, direct, true)
    this.directHeading.hidden = direct.length === 0
    const more = store.listed.filter((name) => !store.joined.has(name))
    this.renderList(this.moreList, more, false)
    this.moreHeading.hidden = more.length === 0

    const total = store.totalUnread
    this.totalBadge.hidden = total === 0
    this.totalCount.textContent = countText(total)
    if (store.open !== '') document.title = `${total > 0 ? `(${countText(total)}) ` : ''}${topicLabel(store, store.open)} · Canopy`
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
    const lock = document.createElement('span')
    lock.className = 'topic-lock'
    const lockText = document.createElement('span')
    lockText.className = 'visually-hidden'
    lockText.textContent = 'Private: '
    lock.append(icon(...lockPaths), lockText)
    const label = document.createElement('span')
    label.className = 'topic-name'
    const badge = document.createElement('span')
    badge.className = 'badge'
    const count = document.createElement('span')
    const unread = document.createElement('span')
    unread.className = 'visually-hidden'
    unread.textContent = ' unread'
    badge.append(count, unread)
    link.append(lock, label, badge)
    const leave = document.createElement('button')
    leave.type = 'button'
    leave.className = 'button ghost icon-button topic-leave'
    leave.title = `Leave #${name}`
    leave.setAttribute('aria-label', `Leave #${name}`)
    leave.append(icon(crossPath))
    leave.addEventListener('click', () => { this.leaveFrom(item, name) })
    item.append(link, leave)
    this.items.set(name, item)
    return item
  }

  /** @private The reader left by the item's button: the focus goes to the next topic, or to the form. */
  leaveFrom (item, name) {
    const list = item.parentElement
    const index = list === null ? -1 : Array.prototype.indexOf.call(list.children, item)
    this.store.leave(name)
    const next = list?.children[Math.min(index, list.children.length - 1)]?.querySelector('a')
    ;(next ?? byId('topic-input')).focus()
  }

  /** @private */
  updateItem (item, name, counted) {
    const link = /** @type {HTMLAnchorElement} */ (item.firstElementChild)
    const unread = counted ? this.store.unread(name) : 0
    if (name === this.store.open) link.setAttribute('aria-current', 'page')
    else link.removeAttribute('aria-current')
    link.classList.toggle('has-unread', unread > 0)
    const [lock, label] = /** @type {HTMLElement[]} */ ([...link.children])
    const direct = isDirect(this.store, name)
    lock.hidden = direct || !isPrivate(this.store, name)
    const text = topicLabel(this.store, name)
    // Cut with an ellipsis when long: the whole name shows on hover.
    if (label.textContent !== text) label.textContent = label.title = text
    const leave = /** @type {HTMLButtonElement} */ (item.lastElementChild)
    leave.hidden = !counted || name === defaultTopic || isPrivate(this.store, name)
    const badge = /** @type {HTMLElement} */ (link.lastElementChild)
    const count = /** @type {HTMLElement} */ (badge.firstElementChild)
    badge.hidden = unread === 0
    count.textContent = countText(unread)
  }
}
