import { namePattern } from '/protocol.js'
import { removeMember, setMember, topicMembers } from './api.js'
import { byId, crossPath, icon } from './dom.js'
import { messageButton } from './members.js'
import { hueOf } from './message-log.js'
import { isDirect, isPrivate } from './topic-label.js'

/**
 * The members of the open private topic, under who is here: each with their role, and for
 * an owner the means to add someone by name, change a role and remove a member; any member
 * may leave. The list is the server's (GET …/members), asked for when the topic opens, after
 * each change made here, and when someone not in it comes in. A direct message has no such
 * list: its people are fixed.
 */

/** The refusals of the member routes, in plain words. */
function explain (error, topic, name) {
  switch (error.code) {
    case 'unknown_user': return `Nobody is called “${name}”. Check the spelling of the name.`
    case 'forbidden': return `Only an owner of #${topic} can change its members.`
    case 'last_owner': return `You are the only owner of #${topic}. Make another member an owner first, or remove the other members, then leave.`
    case 'not_found': return `${name} is not a member of #${topic}.`
    default: return error.message
  }
}

export class Roster {
  /**
   * @param {import('./topic-store.js').TopicStore} store
   * @param {{
   *   privateTopics: import('./private-topics.js').PrivateTopics,
   *   message: (name: string) => void,
   *   left: () => void,
   *   sessionEnded: () => void
   * }} listeners message: start a direct message with a member; left: the reader left the topic
   */
  constructor (store, listeners) {
    this.store = store
    this.listeners = listeners
    this.section = byId('roster')
    this.list = byId('roster-list')
    this.total = byId('roster-total')
    this.addForm = byId('roster-add')
    this.nameInput = byId('roster-name')
    this.error = byId('roster-error')
    this.leaveButton = byId('roster-leave')
    /** The topic whose members are shown, '' when none are. */
    this.topic = ''
    /** @type {Array<{ name: string, role: 'owner' | 'member' }> | undefined} undefined until the server has said */
    this.members = undefined
    /** Counts the requests for the list: only the answer to the latest is shown. */
    this.asked = 0

    store.on('open', () => { this.update() })
    store.on('change', () => { if (this.topic !== this.shownTopic) this.update() })
    this.addForm.addEventListener('submit', (event) => {
      event.preventDefault()
      void this.add()
    })
    this.nameInput.addEventListener('input', () => { this.showError('') })
    this.leaveButton.addEventListener('click', () => { void this.leave() })
  }

  /** @private The open topic if it has a member list, else ''. */
  get shownTopic () {
    const { open } = this.store
    return open !== '' && isPrivate(this.store, open) && !isDirect(this.store, open) ? open : ''
  }

  /** Someone came into the open topic: a member the list does not have yet was added meanwhile. */
  someoneJoined (name) {
    if (this.members !== undefined && !this.members.some((member) => member.name === name)) void this.load()
  }

  /** @private Shows the open topic's members, or hides the list. */
  update () {
    this.topic = this.shownTopic
    this.members = undefined
    this.section.hidden = this.topic === ''
    this.showError('')
    this.nameInput.value = ''
    this.render()
    if (this.topic !== '') void this.load()
  }

  /** @private */
  async load () {
    const topic = this.topic
    const asked = ++this.asked
    try {
      const { members } = await topicMembers(topic)
      if (asked !== this.asked || topic !== this.topic) return
      this.members = members
      this.render()
    } catch (error) {
      if (error.status === 401) this.listeners.sessionEnded()
      // Refused: the reader is no longer a member, which the socket says too.
      else if (asked === this.asked && topic === this.topic) this.showError(error.message)
    }
  }

  /** @private Whether the reader is an owner of the topic shown. */
  get owner () {
    const me = this.store.reader.toLowerCase()
    return this.members?.some((member) => member.role === 'owner' && member.name.toLowerCase() === me) === true
  }

  /** @private */
  render () {
    const { topic } = this
    const me = this.store.reader.toLowerCase()
    const owner = this.owner
    // The list is drawn anew: the control that had the focus gets it back.
    const focused = this.list.contains(document.activeElement) ? document.activeElement?.getAttribute('aria-label') : null
    this.total.textContent = this.members === undefined ? '' : String(this.members.length)
    this.addForm.hidden = !owner
    this.leaveButton.hidden = this.members === undefined
    this.leaveButton.textContent = `Leave #${topic}`
    this.leaveButton.title = `Leave #${topic}`
    this.list.replaceChildren(...(this.members ?? []).map(({ name, role }) => {
      const item = document.createElement('li')
      item.className = `member ${hueOf(name)}`
      const avatar = document.createElement('span')
      avatar.className = 'avatar small'
      avatar.setAttribute('aria-hidden', 'true')
      avatar.textContent = [...name][0]?.toUpperCase() ?? '?'
      const label = document.createElement('span')
      label.className = 'member-name'
      label.textContent = label.title = name
      // The name and, under it, the role: the name keeps the width of the row but its buttons.
      const who = document.createElement('span')
      who.className = 'member-who'
      const mine = name.toLowerCase() === me
      if (owner && !mine) {
        who.append(label, this.roleChoice(name, role))
        item.append(avatar, who, messageButton(name, this.listeners.message), this.removeButton(name))
      } else {
        const roleText = document.createElement('span')
        roleText.className = 'member-role'
        roleText.textContent = mine ? `${role}, you` : role
        who.append(label, roleText)
        item.append(avatar, who)
        if (!mine) item.append(messageButton(name, this.listeners.message))
      }
      return item
    }))
    if (focused !== null && focused !== undefined) {
      /** @type {HTMLElement | undefined} */
      const again = [...this.list.querySelectorAll('[aria-label]')].find((element) => element.getAttribute('aria-label') === focused)
      ;(again ?? (this.addForm.hidden ? this.leaveButton : this.nameInput)).focus()
    }
  }

  /** @private An owner's choice of `name`'s role. */
  roleChoice (name, role) {
    const select = document.createElement('select')
    select.className = 'member-role-choice'
    select.setAttribute('aria-label', `Role of ${name}`)
    for (const value of ['member', 'owner']) select.add(new Option(value, value, false, value === role))
    select.addEventListener('change', () => {
      void this.change(name, () => setMember(this.topic, name, select.value === 'owner' ? 'owner' : 'member'))
    })
    return select
  }

  /** @private */
  removeButton (name) {
    const button = document.createElement('button')
    button.type = 'button'
    button.className = 'button ghost icon-button member-action'
    button.title = `Remove ${name}`
    button.setAttribute('aria-label', `Remove ${name} from #${this.topic}`)
    button.append(icon(crossPath))
    button.addEventListener('click', () => { void this.change(name, () => removeMember(this.topic, name)) })
    return button
  }

  /** @private Adds the member named in the form. */
  async add () {
    const name = this.nameInput.value.trim()
    if (!namePattern.test(name)) {
      this.showError('A name is 3 to 32 characters: letters, digits, _ . or -', true)
      this.nameInput.focus()
      return
    }
    const added = await this.change(name, () => setMember(this.topic, name, 'member'))
    if (added) this.nameInput.value = ''
    else this.nameInput.setAttribute('aria-invalid', 'true')
    this.nameInput.focus()
  }

  /**
   * @private Makes a change to the members of the topic shown, then shows the list again.
   * @returns {Promise<boolean>} whether the server made it
   */
  async change (name, request) {
    const topic = this.topic
    this.showError('')
    this.section.setAttribute('aria-busy', 'true')
    try {
      await request()
      return true
    } catch (error) {
      if (error.status === 401) this.listeners.sessionEnded()
      else if (topic === this.topic) this.showError(explain(error, topic, name))
      return false
    } finally {
      this.section.removeAttribute('aria-busy')
      if (topic === this.topic) await this.load()
    }
  }

  /** @private */
  async leave () {
    const topic = this.topic
    this.showError('')
    try {
      await this.listeners.privateTopics.leave(topic)
    } catch (error) {
      if (error.status === 401) this.listeners.sessionEnded()
      else if (topic === this.topic) this.showError(explain(error, topic, this.store.reader))
      return
    }
    this.listeners.left()
  }

  /** @private @param {string} message @param {boolean} [ofName] the name typed is what is wrong */
  showError (message, ofName = false) {
    this.error.textContent = message
    if (ofName) this.nameInput.setAttribute('aria-invalid', 'true')
    else this.nameInput.removeAttribute('aria-invalid')
  }
}
