import { maxPasswordChars, minPasswordChars, namePattern } from '/protocol.js'
import { adminUsers, createAccount, setUserEnabled } from './api.js'
import { byId, modal } from './dom.js'

/**
 * The users page of an administrator, a dialog opened from the account dialog: every
 * account by name, a page at a time ("More" asks for the next), each with a button that
 * disables it (its sessions end and its logins are refused) or enables it again, and a form
 * that creates an account (the only way to one when registration is closed).
 */

/** GET /api/admin/users answers this many users a page at most (docs/protocol.md): a full page may have more after it. */
const usersPageSize = 100

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' })

/**
 * @typedef {{ name: string, admin: boolean, disabled: boolean, createdAt: string }} UserRow
 */

export class AdminUsers {
  /** @param {{ sessionEnded: () => void }} listeners */
  constructor (listeners) {
    this.listeners = listeners
    this.modal = modal('users-dialog')
    this.list = byId('users-list')
    this.error = byId('users-error')
    this.more = byId('users-more')
    this.form = byId('account-form')
    this.nameInput = byId('account-new-name')
    this.passwordInput = byId('account-new-password')
    this.formError = byId('account-form-error')
    this.formDone = byId('account-form-done')
    this.passwordInput.maxLength = maxPasswordChars
    byId('account-new-password-hint').textContent = `At least ${minPasswordChars} characters`
    /** @type {UserRow[]} */
    this.users = []
    /** Counts the loads from the start: a page asked for before the last one started is dropped. */
    this.loads = 0

    this.more.addEventListener('click', () => { void this.loadPage(this.users.at(-1)?.name) })
    this.form.addEventListener('submit', (event) => {
      event.preventDefault()
      void this.create()
    })
  }

  /** Opens the page with its first users. */
  open () {
    this.formError.textContent = ''
    this.formDone.textContent = ''
    this.modal.open(this.nameInput)
    void this.loadPage(undefined)
  }

  /** Logged out: closed, and nothing of it stays. */
  close () {
    this.modal.dialog.close()
    this.users = []
    this.loads += 1
    this.more.hidden = true
    this.render()
    this.form.reset()
  }

  /** @private The page of users after `after` (the first page when undefined), added to the list. */
  async loadPage (after) {
    const load = after === undefined ? ++this.loads : this.loads
    // Checked first: a button being disabled may lose the focus.
    const moreFocused = after !== undefined && document.activeElement === this.more
    if (after === undefined) {
      this.users = []
      this.more.hidden = true
      this.render()
    }
    this.error.textContent = ''
    this.more.disabled = true
    let users
    try {
      ({ users } = await adminUsers(after))
    } catch (error) {
      if (error.status === 401) this.listeners.sessionEnded()
      else if (load === this.loads) this.error.textContent = `The users could not be listed: ${error.message}`
      return
    } finally {
      this.more.disabled = false
    }
    if (load !== this.loads) return
    this.users.push(...users)
    this.render()
    this.more.hidden = users.length < usersPageSize
    // More may be gone: the keyboard goes on from the first user it brought.
    if (moreFocused && users.length > 0) /** @type {HTMLElement | null} */ (this.list.children[this.users.length - users.length]?.querySelector('button'))?.focus()
  }

  /** @private */
  render () {
    this.list.replaceChildren(...this.users.map((user) => this.row(user)))
  }

  /** @private @param {UserRow} user */
  row (user) {
    const item = document.createElement('li')
    item.className = 'user-row'
    item.classList.toggle('disabled', user.disabled)
    const name = document.createElement('span')
    name.className = 'user-name'
    name.textContent = name.title = user.name
    const facts = document.createElement('span')
    facts.className = 'user-facts'
    const created = document.createElement('time')
    created.dateTime = user.createdAt
    created.textContent = `since ${dateFormat.format(new Date(user.createdAt))}`
    facts.append(created)
    for (const [shown, text] of [[user.admin, 'administrator'], [user.disabled, 'disabled']]) {
      if (!shown) continue
      const tag = document.createElement('span')
      tag.className = `user-tag ${text}`
      tag.textContent = text
      facts.append(' ', tag)
    }
    const action = user.disabled ? 'enable' : 'disable'
    const button = document.createElement('button')
    button.type = 'button'
    button.className = `button small ${user.disabled ? 'secondary' : 'ghost'}`
    button.textContent = user.disabled ? 'Enable' : 'Disable'
    button.setAttribute('aria-label', `${button.textContent} ${user.name}`)
    button.addEventListener('click', () => { void this.setEnabled(user, action) })
    item.append(name, facts, button)
    return item
  }

  /** @private */
  async setEnabled (user, action) {
    this.error.textContent = ''
    try {
      await setUserEnabled(user.name, action)
    } catch (error) {
      if (error.status === 401) this.listeners.sessionEnded()
      else this.error.textContent = `${user.name} could not be ${action}d: ${error.message}`
      return
    }
    user.disabled = action === 'disable'
    this.render()
    // The row was drawn anew: its button, now the other one, keeps the focus.
    const label = `${user.disabled ? 'Enable' : 'Disable'} ${user.name}`
    ;[...this.list.querySelectorAll('button')].find((button) => button.getAttribute('aria-label') === label)?.focus()
  }

  /** @private */
  async create () {
    const username = this.nameInput.value.trim()
    const password = this.passwordInput.value
    this.formDone.textContent = ''
    const problem = !namePattern.test(username)
      ? { field: this.nameInput, message: 'A name is 3 to 32 characters: letters, digits, _ . or -' }
      : [...password].length < minPasswordChars
          ? { field: this.passwordInput, message: `A password is at least ${minPasswordChars} characters.` }
          : undefined
    this.formError.textContent = problem?.message ?? ''
    for (const input of [this.nameInput, this.passwordInput]) {
      if (input === problem?.field) input.setAttribute('aria-invalid', 'true')
      else input.removeAttribute('aria-invalid')
    }
    if (problem !== undefined) {
      problem.field.focus()
      return
    }
    try {
      await createAccount(username, password)
    } catch (error) {
      if (error.status === 401) this.listeners.sessionEnded()
      else this.formError.textContent = error.status === 409 ? `There is already an account called ${username}.` : error.message
      return
    }
    this.form.reset()
    this.formDone.textContent = `The account ${username} is made: they can log in with the password you gave.`
    void this.loadPage(undefined)
  }
}
