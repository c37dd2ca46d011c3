import { logout } from './api.js'
import { AuthView } from './auth-view.js'
import { Composer } from './composer.js'
import { ChatConnection } from './connection.js'
import { Members } from './members.js'
import { MessageLog } from './message-log.js'
import { Panels } from './panels.js'
import { sessionHint } from './storage.js'
import { TopicHistory } from './topic-history.js'
import { countingTag, TopicList } from './topic-list.js'
import { TopicPicker } from './topic-picker.js'
import { byId } from './dom.js'
import { defaultTopic } from '/protocol.js'

/**
 * The chat page, put together: the login form, then the open topic with its log, who is
 * here and the composer, the list of topics with their unread counts, and the connection
 * indicator. One socket carries every joined topic. The protocol's constants and this
 * server's limits come from /protocol.js, which the server generates from src/protocol.ts
 * and its configuration; the frames are described there and in the protocol documentation.
 */

const chatView = byId('chat-view')
const connectionIndicator = byId('connection')
const connectionText = byId('connection-text')
const userName = byId('user-name')
const roomTitle = byId('room-title')
const logoutButton = byId('logout')

/** @type {ChatConnection | undefined} */
let connection
/**
 * Counts the topics opened: a `subscribed` that answers an earlier opening (of a topic left
 * since, or of the same one before it was left) is not the open topic's history.
 */
let openings = 0

const log = new MessageLog(byId('messages'), byId('log-scroller'))
const members = new Members()
const panels = new Panels()
const auth = new AuthView({ authenticated: enterChat })
const picker = new TopicPicker({
  switched: switchTopic,
  joined: () => {
    panels.topicChosen()
    composer.focus()
  }
})
const sessionEnded = () => { showLogin('Your session has ended. Log in again.') }
const topicList = new TopicList({
  connection: () => connection,
  sessionEnded,
  unreadLine: (topic, readId) => { if (topic === picker.topic) log.markUnread(readId) },
  // The open topic was left: the page goes where it starts.
  leave: () => { location.hash = `#${defaultTopic}` }
})
const topicHistory = new TopicHistory(log, {
  catchUp: (topic, since) => { connection?.subscribe(topic, { since, tag: openings }) },
  connected: () => connection !== undefined,
  sessionEnded
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
  opened () { void topicList.connected() },
  subscribed (frame, subscription) {
    if (subscription?.tag === openings && frame.topic === picker.topic) {
      topicHistory.subscribed(frame)
      members.present(frame.present)
      topicList.received(frame.topic, frame.history)
    } else if (subscription?.tag === countingTag) {
      topicList.counting(frame)
    } else {
      // The open topic of a moment ago: its newest messages still count.
      topicList.received(frame.topic, frame.history)
    }
  },
  frame (frame) {
    const open = frame.topic === picker.topic
    switch (frame.type) {
      case 'message':
        if (open) topicHistory.message(frame)
        topicList.received(frame.topic, [frame])
        break
      // Who comes and goes shows in the list of who is here, not in the log: every reload
      // of someone's page would otherwise write a line there for everyone.
      case 'joined':
        if (open) members.joined(frame.user)
        break
      case 'left':
        if (open) members.left(frame.user)
        break
      case 'error':
        log.notice(`The server says: ${frame.message}`)
        break
    }
  },
  dropped () {
    topicHistory.dropped()
    members.stale()
  },
  ack (entry, ack) { composer.acknowledged(entry, ack) },
  retrying (entry, error) { composer.retrying(entry, error) },
  failed (entry, error) { composer.failed(entry, error) },
  loggedOut: sessionEnded
}

function showLogin (message = '') {
  connection?.stop()
  connection = undefined
  composer.clear()
  log.clear()
  // Another person may log in next on this browser.
  topicList.reset()
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
  connection = new ChatConnection(picker.topic, openings, connectionHooks)
  composer.focus()
}

function showUser (user) {
  log.me = user.name
  members.me = user.name
  userName.textContent = user.name
  userName.title = user.name
  sessionHint.held = true
}

function showTopic () {
  const topic = picker.topic
  openings += 1
  topicHistory.open(topic)
  members.clear()
  composer.showTopic(topic)
  roomTitle.textContent = `#${topic}`
  roomTitle.title = `#${topic}`
  topicList.openTopic(topic)
}

function switchTopic (topic) {
  composer.clear()
  showTopic()
  connection?.openTopic(topic, openings)
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
