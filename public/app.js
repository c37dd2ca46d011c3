import { authenticate, logout, olderMessages } from './api.js'
import { ChatConnection } from './connection.js'
import { MessageLog } from './message-log.js'

/**
 * The chat page: the login form, then one topic at a time (kept in the URL hash), its log,
 * the composer and the connection indicator. Frames and their meaning: src/protocol.ts.
 */

const topicPattern = /^[a-z0-9][a-z0-9_.-]{0,63}$/
const namePattern = /^[A-Za-z0-9_.-]{3,32}$/
const minPasswordChars = 8
const defaultTopic = 'general'
/** Older messages fetched per scroll to the top. */
const olderPageSize = 50
/** Scrolling within this many pixels of the top loads older messages. */
const loadOlderWithinPx = 120
const maxRecentTopics = 10
/**
 * Set while this browser probably holds a session, so that a first visit shows the form
 * without asking /api/me (whose 401 the browser would log as an error in the console).
 */
const sessionHintKey = 'canopy.session'
const recentTopicsKey = 'canopy.recentTopics'

const byId = (id) => document.getElementById(id)
const authView = byId('auth-view')
const authForm = byId('auth-form')
const nameInput = byId('auth-name')
const passwordInput = byId('auth-password')
const authError = byId('auth-error')
const chatView = byId('chat-view')
const connectionIndicator = byId('connection')
const connectionText = byId('connection-text')
const userName = byId('user-name')
const logoutButton = byId('logout')
const topicForm = byId('topic-form')
const topicInput = byId('topic-input')
const topicError = byId('topic-error')
const recentTopicsList = byId('recent-topics')
const roomTitle = byId('room-title')
const scroller = byId('log-scroller')
const loadOlderButton = byId('load-older')
const historyStart = byId('history-start')
const emptyHint = byId('empty-hint')
const composer = byId('composer')
const messageInput = byId('message-input')

const log = new MessageLog(byId('messages'), scroller)

const state = {
  /** @type {ChatConnection | undefined} */
  connection: undefined,
  topic: defaultTopic,
  /** The highest message id received in the topic: where a reconnection catches up from. */
  lastId: undefined,
  /** The topic's first `subscribed` has arrived. */
  loaded: false,
  /** The log goes back to the topic's first message. */
  reachedStart: false,
  loadingOlder: false,
  /** @type {Map<string, HTMLLIElement>} the log item of each message in the outbox, by ref */
  pendingItems: new Map()
}

const storage = {
  get (key) {
    try { return localStorage.getItem(key) } catch { return null }
  },
  set (key, value) {
    try { localStorage.setItem(key, value) } catch { /* storage may be off; it only saves a round trip */ }
  },
  remove (key) {
    try { localStorage.removeItem(key) } catch { /* as above */ }
  }
}

// ---- Views ----

function showLogin (message = '') {
  state.connection?.stop()
  state.connection = undefined
  state.pendingItems.clear()
  storage.remove(sessionHintKey)
  log.clear()
  chatView.hidden = true
  authView.hidden = false
  document.title = 'Canopy'
  showAuthError(message)
  nameInput.focus()
}

function enterChat (user) {
  authView.hidden = true
  chatView.hidden = false
  if (user !== undefined) showUser(user)
  showTopic()
  state.connection?.stop()
  state.connection = new ChatConnection(state.topic, connectionHooks)
  messageInput.focus()
}

function showUser (user) {
  log.me = user.name
  userName.textContent = user.name
  storage.set(sessionHintKey, '1')
}

const connectionLabels = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…' }

function showConnection (connectionState) {
  connectionIndicator.dataset.state = connectionState
  connectionText.textContent = connectionLabels[connectionState]
}

// ---- Login and registration ----

function showAuthError (message, field) {
  authError.textContent = message
  for (const input of [nameInput, passwordInput]) {
    if (input === field) input.setAttribute('aria-invalid', 'true')
    else input.removeAttribute('aria-invalid')
  }
  field?.focus()
}

function checkCredentials (action, username, password) {
  if (username === '') return { field: nameInput, message: 'Enter your name.' }
  if (password === '') return { field: passwordInput, message: 'Enter your password.' }
  if (action !== 'register') return undefined
  if (!namePattern.test(username)) {
    return { field: nameInput, message: 'A name is 3 to 32 characters: letters, digits, _ . or -' }
  }
  if (password.length < minPasswordChars) {
    return { field: passwordInput, message: `A password is at least ${minPasswordChars} characters.` }
  }
  return undefined
}

authForm.addEventListener('submit', async (event) => {
  event.preventDefault()
  const action = event.submitter?.value === 'register' ? 'register' : 'login'
  const username = nameInput.value.trim()
  const password = passwordInput.value
  const problem = checkCredentials(action, username, password)
  if (problem !== undefined) {
    showAuthError(problem.message, problem.field)
    return
  }
  showAuthError('')
  authForm.setAttribute('aria-busy', 'true')
  for (const button of authForm.querySelectorAll('button')) button.disabled = true
  try {
    const { user } = await authenticate(action, username, password)
    passwordInput.value = ''
    enterChat(user)
  } catch (error) {
    showAuthError(error.message)
  } finally {
    authForm.removeAttribute('aria-busy')
    for (const button of authForm.querySelectorAll('button')) button.disabled = false
  }
})

logoutButton.addEventListener('click', async () => {
  logoutButton.disabled = true
  // Closed by us first, so the 4401 the logout sends to the session's sockets is for other tabs.
  state.connection?.stop()
  state.connection = undefined
  let message = ''
  try {
    await logout()
  } catch (error) {
    message = `Could not log out: ${error.message}`
  } finally {
    logoutButton.disabled = false
  }
  showLogin(message)
})

// ---- Topics ----

function topicFromHash () {
  let name
  try {
    name = decodeURIComponent(location.hash.slice(1)).trim().toLowerCase()
  } catch {
    return undefined
  }
  return topicPattern.test(name) ? name : undefined
}

function recentTopics () {
  try {
    const topics = JSON.parse(storage.get(recentTopicsKey) ?? '[]')
    if (Array.isArray(topics)) return topics.filter((topic) => typeof topic === 'string' && topicPattern.test(topic))
  } catch { /* a damaged list starts afresh */ }
  return []
}

function showTopic () {
  const { topic } = state
  const topics = [topic, ...recentTopics().filter((other) => other !== topic)].slice(0, maxRecentTopics)
  if (!topics.includes(defaultTopic)) topics.push(defaultTopic)
  storage.set(recentTopicsKey, JSON.stringify(topics))
  recentTopicsList.replaceChildren(...topics.toSorted().map((name) => {
    const link = document.createElement('a')
    link.href = `#${name}`
    link.textContent = `#${name}`
    if (name === topic) link.setAttribute('aria-current', 'page')
    const item = document.createElement('li')
    item.append(link)
    return item
  }))
  roomTitle.textContent = `#${topic}`
  messageInput.placeholder = `Message #${topic}`
  document.title = `#${topic} · Canopy`
  showHistoryEdge()
}

function switchTopic (topic) {
  if (topic === state.topic) return
  state.topic = topic
  state.lastId = undefined
  state.loaded = false
  state.reachedStart = false
  state.pendingItems.clear()
  log.clear()
  showTopic()
  state.connection?.setTopic(topic)
}

window.addEventListener('hashchange', () => {
  const topic = topicFromHash()
  if (topic === undefined) {
    history.replaceState(null, '', `#${state.topic}`)
    return
  }
  switchTopic(topic)
})

topicForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const topic = topicInput.value.trim().replace(/^#/, '').toLowerCase()
  if (!topicPattern.test(topic)) {
    topicError.textContent = 'A topic is up to 64 characters: a–z, 0–9, _ . or -, starting with a letter or digit.'
    topicInput.setAttribute('aria-invalid', 'true')
    topicInput.focus()
    return
  }
  topicError.textContent = ''
  topicInput.removeAttribute('aria-invalid')
  topicInput.value = ''
  location.hash = `#${topic}`
  messageInput.focus()
})

// ---- The log ----

function showHistoryEdge () {
  const hasMessages = log.oldestId !== undefined
  loadOlderButton.hidden = !state.loaded || state.reachedStart || !hasMessages
  loadOlderButton.disabled = state.loadingOlder
  loadOlderButton.textContent = state.loadingOlder ? 'Loading older messages…' : 'Load older messages'
  historyStart.hidden = !state.loaded || !state.reachedStart || !hasMessages
  historyStart.textContent = `This is the start of #${state.topic}.`
  emptyHint.textContent = state.loaded ? `No messages in #${state.topic} yet. Say hello!` : 'Loading messages…'
}

function received (messages) {
  log.add(messages)
  for (const message of messages) {
    if (state.lastId === undefined || message.id > state.lastId) state.lastId = message.id
  }
}

function subscribed (frame) {
  const known = state.lastId
  received(frame.history)
  state.loaded = true
  const first = frame.history[0]
  const last = frame.history.at(-1)
  if (frame.truncated === true && last !== undefined) {
    // More was missed than one reply holds: ask for the rest.
    state.connection?.catchUp(frame.topic, last.id)
  } else if (known !== undefined && first !== undefined && first.id > known + 1) {
    // Back after a drop and the recent history does not reach back to what we had.
    state.connection?.catchUp(frame.topic, known)
  }
  if (log.oldestId === 1) state.reachedStart = true
  showHistoryEdge()
  fillViewport()
}

async function loadOlder () {
  const oldest = log.oldestId
  if (state.loadingOlder || state.reachedStart || oldest === undefined || state.connection === undefined) return
  const { topic } = state
  state.loadingOlder = true
  showHistoryEdge()
  let loaded = false
  try {
    const { messages } = await olderMessages(topic, oldest, olderPageSize)
    if (topic !== state.topic) return
    log.add(messages, { older: true })
    if (messages.length < olderPageSize || log.oldestId === 1) state.reachedStart = true
    loaded = true
  } catch (error) {
    if (error.status === 401) {
      showLogin('Your session has ended. Log in again.')
      return
    }
    // The button stays for another try.
  } finally {
    state.loadingOlder = false
    if (topic === state.topic) showHistoryEdge()
  }
  if (loaded) fillViewport()
}

/** Loads older messages until the log can scroll, so there is always a top to scroll to. */
function fillViewport () {
  if (!log.scrollable) void loadOlder()
}

scroller.addEventListener('scroll', () => {
  if (scroller.scrollTop < loadOlderWithinPx) void loadOlder()
}, { passive: true })
loadOlderButton.addEventListener('click', () => { void loadOlder() })

// ---- The connection ----

/** @type {import('./connection.js').Hooks} */
const connectionHooks = {
  status: showConnection,
  user: showUser,
  frame (frame) {
    if (frame.topic !== undefined && frame.topic !== state.topic) return
    switch (frame.type) {
      case 'subscribed':
        subscribed(frame)
        break
      case 'message':
        received([frame])
        break
      case 'joined':
        log.notice(`${frame.user} joined`)
        break
      case 'left':
        log.notice(`${frame.user} left`)
        break
      case 'error':
        if (frame.code === 'unavailable') {
          // The history could not be read: subscribe again once the database is back.
          setTimeout(() => { state.connection?.catchUp(state.topic, state.lastId) }, 2000)
        }
        log.notice(`The server says: ${frame.message}`)
        break
    }
  },
  ack (entry, ack) {
    const item = state.pendingItems.get(entry.ref)
    state.pendingItems.delete(entry.ref)
    if (item !== undefined) log.acknowledge(item, ack.id, ack.at)
  },
  retrying (entry, error) {
    const item = state.pendingItems.get(entry.ref)
    if (item !== undefined) log.retrying(item, error.message)
  },
  failed (entry, error) {
    const item = state.pendingItems.get(entry.ref)
    state.pendingItems.delete(entry.ref)
    if (item !== undefined) log.failed(item, error.message)
  },
  loggedOut () {
    showLogin('Your session has ended. Log in again.')
  }
}

// ---- The composer ----

messageInput.addEventListener('keydown', (event) => {
  // Enter sends; Shift+Enter is a new line; Enter that ends an IME composition does neither.
  if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.keyCode === 229) return
  event.preventDefault()
  composer.requestSubmit()
})

composer.addEventListener('submit', (event) => {
  event.preventDefault()
  const text = messageInput.value.trimEnd()
  if (text.trim() === '' || state.connection === undefined) return
  const item = log.addPending(text)
  const entry = state.connection.publish(state.topic, text)
  state.pendingItems.set(entry.ref, item)
  messageInput.value = ''
  messageInput.focus()
})

// ---- Start ----

const initialTopic = topicFromHash()
if (initialTopic === undefined) history.replaceState(null, '', `#${defaultTopic}`)
state.topic = initialTopic ?? defaultTopic
if (storage.get(sessionHintKey) !== null) enterChat()
else showLogin()
