import { minPasswordChars, maxPasswordChars } from '/protocol.js'
import { changePassword } from './api.js'
import { byId, modal } from './dom.js'

/**
 * The reader's account, a dialog opened from the header: who is signed in, the form that
 * changes the password (the server then ends every other session of the reader), and for an
 * administrator the way to the users page.
 */

export class Account {
  /** @param {{ openUsers: () => void }} listeners openUsers: show the users page (administrators only) */
  constructor (listeners) {
    this.listeners = listeners
    this.modal = modal('account-dialog')
    this.openButton = byId('account-open')
    this.name = byId('account-name')
    this.adminSection = byId('account-admin')
    this.form = byId('password-form')
    this.current = byId('password-current')
    this.next = byId('password-new')
    this.error = byId('password-error')
    this.done = byId('password-done')
    this.next.maxLength = maxPasswordChars
    byId('password-new-hint').textContent = `At least ${minPasswordChars} characters`

    this.openButton.addEventListener('click', () => {
      this.showError('')
      this.done.textContent = ''
      this.modal.open(this.current)
    })
    byId('users-open').addEventListener('click', () => {
      this.modal.dialog.close()
      this.listeners.openUsers()
    })
    for (const input of [this.current, this.next]) input.addEventListener('input', () => { this.showError('') })
    this.form.addEventListener('submit', (event) => {
      event.preventDefault()
      void this.submit()
    })
  }

  /** @param {{ name: string, admin?: boolean }} user the reader, as /api/me says */
  showUser (user) {
    this.name.textContent = user.name
    this.name.title = user.name
    this.adminSection.hidden = user.admin !== true
  }

  /** Logged out: nothing of the account stays on screen. */
  close () {
    this.modal.dialog.close()
    this.form.reset()
    this.showError('')
    this.done.textContent = ''
  }

  /** @private */
  async submit () {
    const current = this.current.value
    const next = this.next.value
    this.done.textContent = ''
    if (current === '') {
      this.showError('Enter your current password.', this.current)
      return
    }
    // Characters as the server counts them: code points, not UTF-16 units.
    if ([...next].length < minPasswordChars) {
      this.showError(`A new password is at least ${minPasswordChars} characters.`, this.next)
      return
    }
    this.showError('')
    const button = /** @type {HTMLButtonElement} */ (this.form.querySelector('button[type="submit"]'))
    button.disabled = true
    try {
      await changePassword(current, next)
      this.form.reset()
      this.done.textContent = 'Your password is changed. You are still signed in here; your other sessions have ended.'
    } catch (error) {
      if (error.status === 401) this.showError('That is not your current password. Your password is unchanged.', this.current)
      else this.showError(error.message)
    } finally {
      button.disabled = false
    }
  }

  /** @private @param {string} message @param {HTMLInputElement} [field] the input at fault, focused */
  showError (message, field) {
    this.error.textContent = message
    for (const input of [this.current, this.next]) {
      if (input === field) input.setAttribute('aria-invalid', 'true')
      else input.removeAttribute('aria-invalid')
    }
    field?.focus()
  }
}
