import { hueOf } from './message-log.js'
import { byId, icon, messagePath } from './dom.js'

/**
 * Who is here now in the open topic: the `present` list of its `subscribed` frame (the
 * reader included), kept up to date by `joined` and `left`, and its count on the button
 * that unfolds the list on narrow screens. Each other person has a button to start a direct
 * message with them.
 */

const byName = new Intl.Collator(undefined, { sensitivity: 'base', numeric: true })

/**
 * The button that starts a direct message with `name`, as the member lists show it.
 * @param {string} name @param {(name: string) => void} message
 */
export function messageButton (name, message) {
  const button = document.createElement('button')
  button.type = 'button'
  button.className = 'button ghost icon-button member-action'
  button.title = `Message ${name}`
  button.setAttribute('aria-label', `Message ${name}`)
  button.append(icon(messagePath))
  button.addEventListener('click', () => { message(name) })
  return button
}

export class Members {
  /** @param {{ message: (name: string) => void }} listeners message: start a direct message with someone here */
  constructor (listeners) {
    this.listeners = listeners
    this.panel = byId('members-panel')
    this.list = byId('members')
    this.counts = [byId('members-count'), byId('members-total')]
    /** The reader's name, marked in the list. */
    this.me = ''
    /** @type {Set<string> | undefined} undefined until the server has said */
    this.names = undefined
  }

  /** Another topic is open: nobody is known there yet. */
  clear () {
    this.names = undefined
    this.render()
  }

  /** The socket dropped: the list may be out of date until the next `subscribed`. */
  stale () {
    this.panel.setAttribute('aria-busy', 'true')
  }

  /** @param {unknown} present the `present` field of a `subscribed` frame */
  present (present) {
    if (!Array.isArray(present)) return
    this.names = new Set(present.filter((name) => typeof name === 'string'))
    this.render()
  }

  /** @param {string} name */
  joined (name) {
    if (this.names === undefined) return
    this.names.add(name)
    this.render()
  }

  /** @param {string} name */
  left (name) {
    if (this.names?.delete(name) === true) this.render()
  }

  /** @private */
  render () {
    this.panel.removeAttribute('aria-busy')
    const names = [...this.names ?? []].sort(byName.compare)
    for (const count of this.counts) count.textContent = this.names === undefined ? '…' : String(names.length)
    this.list.replaceChildren(...names.map((name) => {
      const item = document.createElement('li')
      item.className = `member ${hueOf(name)}`
      const avatar = document.createElement('span')
      avatar.className = 'avatar small'
      avatar.setAttribute('aria-hidden', 'true')
      avatar.textContent = [...name][0]?.toUpperCase() ?? '?'
      const label = document.createElement('span')
      label.className = 'member-name'
      label.textContent = name
      label.title = name
      item.append(avatar, label)
      if (name === this.me) {
        const you = document.createElement('span')
        you.className = 'member-you'
        you.textContent = '(you)'
        item.append(' ', you)
      } else {
        item.append(messageButton(name, this.listeners.message))
      }
      return item
    }))
  }
}
