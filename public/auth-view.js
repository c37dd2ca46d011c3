import { maxPasswordChars, minPasswordChars, namePattern } from '/protocol.js'
import { authenticate } from './api.js'
import { byId } from './dom.js'

/**
 * The login and registration form. Registration rules are checked here first, with the
 * server's own limits, so that a mistake is named before anything is sent.
 */

/** Refusals that need saying in other words than the server's: what to do next. */
const refusals = new Map([
  ['disabled', 'This account is disabled: an administrator has to enable it before you can log in.'],
  ['registration_closed', 'Registration is closed here: an administrator can make an account for you.']
])

export class AuthView {
  /** @param {{ authenticated: (user: { id: number, name: string }) => void }} listeners */
  constructor (listeners) {
    this.listeners = listeners
    this.view = byId('auth-view')
    this.form = byId('auth-form')
    this.nameInput = byId('auth-name')
    this.passwordInput = byId('auth-password')
    this.error = byId('auth-error')
    /** Shown when a login is refused: perhaps there is no account with that name yet. */
    this.registerHint = byId('auth-register-hint')
    this.passwordInput.maxLength = maxPasswordChars
    byId('auth-password-hint').textContent = `At least ${minPasswordChars} characters`
    this.form.addEventListener('submit', (event) => { void this.submit(event) })
    for (const input of [this.nameInput, this.passwordInput]) {
      input.addEventListener('input', () => { this.registerHint.hidden = true })
    }
  }

  /** @param {string} [message] why the form is shown, if not for a first visit */
  show (message = '') {
    this.view.hidden = false
    this.showError(message)
    this.nameInput.focus()
  }

  hide () {
    this.view.hidden = true
  }

  /** @private */
  showError (message, field) {
    this.error.textContent = message
    this.registerHint.hidden = true
    for (const input of [this.nameInput, this.passwordInput]) {
      if (input === field) input.setAttribute('aria-invalid', 'true')
      else input.removeAttribute('aria-invalid')
    }
    field?.focus()
  }

  /** @private */
  check (action, username, password) {
    if (username === '') return { field: this.nameInput, message: 'Enter your name.' }
    if (password === '') return { field: this.passwordInput, message: 'Enter your password.' }
    if (action !== 'register') return undefined
    if (!namePattern.test(username)) {
      return { field: this.nameInput, message: 'A name is 3 to 32 characters: letters, digits, _ . or -' }
    }
    // Characters as the server counts them: code points, not UTF-16 units.
    if ([...password].length < minPasswordChars) {
      return { field: this.passwordInput, message: `A password is at least ${minPasswordChars} characters.` }
    }
    return undefined
  }

  /** @private @param {SubmitEvent} event */
  async submit (event) {
    event.preventDefault()
    const action = event.submitter?.value === 'register' ? 'register' : 'login'
    const username = this.nameInput.value.trim()
    const password = this.passwordInput.value
    const problem = this.check(action, username, password)
    if (problem !== undefined) {
      this.showError(problem.message, problem.field)
      return
    }
    this.showError('')
    const buttons = this.form.querySelectorAll('button')
    this.form.setAttribute('aria-busy', 'true')
    for (const button of buttons) button.disabled = true
    try {
      const { user } = await authenticate(action, username, password)
      this.passwordInput.value = ''
      this.listeners.authenticated(user)
    } catch (error) {
      this.showError(refusals.get(error.code) ?? error.message)
      // The server does not say whether the name exists: the hint offers both readings.
      this.registerHint.hidden = !(action === 'login' && error.status === 401)
    } finally {
      this.form.removeAttribute('aria-busy')
      for (const button of buttons) button.disabled = false
    }
  }
}
