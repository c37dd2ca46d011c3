import { logout } from './api.js'
import { AuthView } from './auth-view.js'
import { Composer } from './composer.js'
import { ChatConnection } from './connection.js'
import { MessageLog } from './message-log.js'
import { sessionHint } from './storage.js'
import { TopicHistory } from './topic-history.js'
import { TopicPicker } from './topic-picker.js'

/**
 * The chat page, put together: the login form, then one topic at a time with its log, the
 * composer and the connection indicator. The protocol's constants and this server's limits
 * come from /protocol.js, which the server generates from src/protocol.ts and its
 * configuration; the frames are described there and in the protocol documentation.
 */

const byId = (id) => document.getElementById(id)
const chatView = byId('chat-view')
const connectionIndicator = byId('connection')
const connectionText = byId('connection-text')
const userName = byId('user-name')
const logoutButton = byId('logout')

/** @type {ChatConnection | undefined} */
let connection

const log = new MessageLog(byId('messages'), byId('log-scroller'))
const auth = new AuthView({ authenticated: enterChat })
const picker = new TopicPicker({ switched: switchTopic, joined: () => { composer.focus() } })
const topicHistory = new TopicHistory(log, {
  connection: () => connection,
  sessionEnded: () => { showLogin('Your session has ended. Log in again.') }
})
const composer = new Composer(log, { publish: (text) => connection?.publish(picker.topic, text) })

const connectionLabels = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…' }

/** @type {import('./connection.js').Hooks} */
const connectionHooks = {
  status (state) {
    connectionIndicator.dataset.state = state
    connectionText.textContent = connectionLabels[state]
  },
  user: showUser,
  frame (frame) {
    if (frame.topic !== undefined && frame.topic !== picker.topic) return
    switch (frame.type) {
      case 'subscribed':
        topicHistory.subscribed(frame)
        break
      case 'message':
        topicHistory.message(frame)
        break
      case 'joined':
        log.notice(`${frame.user} joined`)
        break
      case 'left':
        log.notice(`${frame.user} left`)
        break
      case 'error':
        // Neither a topic nor a ref: a subscribe of the page's could not read the history.
        if (frame.code === 'unavailable' && frame.ref === undefined) topicHistory.unavailable()
        log.notice(`The server says: ${frame.message}`)
        break
    }
  },
  dropped () { topicHistory.dropped() },
  ack (entry, ack) { composer.acknowledged(entry, ack) },
  retrying (entry, error) { composer.retrying(entry, error) },
  failed (entry, error) { composer.failed(entry, error) },
  loggedOut () { showLogin('Your session has ended. Log in again.') }
}

function showLogin (message = '') {
  connection?.stop()
  connection = undefined
  composer.clear()
  log.clear()
  sessionHint.held = false
  chatView.hidden = true
  document.title = 'Canopy'
  auth.show(message)
}

/** @param {{ id: number, name: string }} [user] known already after logging in, else from /api/me */
function enterChat (user) {
  auth.hide()
  chatView.hidden = false
  if (user !== undefined) showUser(user)
  showTopic()
  connection?.stop()
  connection = new ChatConnection(picker.topic, connectionHooks)
  composer.focus()
}

function showUser (user) {
  log.me = user.name
  userName.textContent = user.name
  sessionHint.held = true
}

function showTopic () {
  topicHistory.open(picker.topic)
  composer.showTopic(picker.topic)
  picker.show()
}

function switchTopic (topic) {
  composer.clear()
  showTopic()
  connection?.setTopic(topic)
}

logoutButton.addEventListener('click', async () => {
  logoutButton.disabled = true
  // Closed by us first, so the close that the logout sends to the session's sockets is for other tabs.
  connection?.stop()
  connection = undefined
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

if (sessionHint.held) enterChat()
else showLogin()
