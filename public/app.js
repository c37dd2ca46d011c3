import { Account } from './account.js'
import { AdminUsers } from './admin-users.js'
import { logout } from './api.js'
import { AuthView } from './auth-view.js'
import { Composer } from './composer.js'
import { ChatSocket } from './connection.js'
import { countingTag, JoinedTopics } from './joined-topics.js'
import { Members } from './members.js'
import { MessageLog } from './message-log.js'
import { NewTopic } from './new-topic.js'
import { PageNotice } from './page-notice.js'
import { Panels } from './panels.js'
import { PrivateTopics } from './private-topics.js'
import { Roster } from './roster.js'
import { sessionHint } from './storage.js'
import { TopicHistory } from './topic-history.js'
import { isDirect, isPrivate, topicLabel } from './topic-label.js'
import { TopicList } from './topic-list.js'
import { TopicPicker } from './topic-picker.js'
import { TopicStore } from './topic-store.js'
import { byId } from './dom.js'

/**
 * The chat page, put together: the login form, then the open topic with its log, who is
 * here and the composer, the list of topics with their unread counts, and the connection
 * indicator. The open topic, the joined topics and their counts live in the store
 * (topic-store.js); the parts below read it and act on its events. One socket carries every
 * joined topic. Private topics and direct messages come and go with the reader's membership
 * (private-topics.js); an owner manages a private topic's members beside who is here
 * (roster.js). The account dialog changes the password and leads an administrator to the
 * users page. The protocol's constants and this server's limits come from /protocol.js,
 * which the server generates from src/protocol.ts and its configuration; the frames are
 * described there and in the protocol documentation (docs/protocol.md).
 */

const chatView = byId('chat-view')
const connectionIndicator = byId('connection')
const connectionText = byId('connection-text')
const userName = byId('user-name')
const topicTitle = byId('topic-title')
const topicLock = byId('topic-lock')
const logoutButton = byId('logout')

/** @type {ChatSocket | undefined} */
let socket

const store = new TopicStore({ visible: document.visibilityState === 'visible' })
const log = new MessageLog(byId('messages'), byId('log-scroller'))
const panels = new Panels()
const auth = new AuthView({ authenticated: enterChat })
const sessionEnded = () => { showLogin('Your session has ended. Log in again.') }
/** A topic was opened from a name or a form: a list over the log folds away, and the composer is ready. */
const topicChosen = () => {
  panels.topicChosen()
  composer.focus()
}
const notice = new PageNotice()
const privateTopics = new PrivateTopics(store, { notice, opened: topicChosen, sessionEnded })
const startDirectMessage = (name) => { void privateTopics.message(name) }
const members = new Members({ message: startDirectMessage })
const roster = new Roster(store, { privateTopics, message: startDirectMessage, left: topicChosen, sessionEnded })
const adminUsers = new AdminUsers({ sessionEnded })
const account = new Account({ openUsers: () => { adminUsers.open() } })
const picker = new TopicPicker(store, { joined: topicChosen })
const joinedTopics = new JoinedTopics(store, { socket: () => socket, sessionEnded })
const topicHistory = new TopicHistory({
  log,
  store,
  listeners: {
    catchUp: (topic, since) => { socket?.subscribe(topic, { since, tag: store.openings }) },
    connected: () => socket !== undefined,
    sessionEnded
  }
})
const composer = new Composer(log, { publish: (text) => socket?.publish(store.open, text) })
new TopicList(store) // eslint-disable-line no-new
new NewTopic(store, { created: topicChosen, sessionEnded }) // eslint-disable-line no-new

store.on('open', (topic) => {
  composer.clear()
  topicHistory.opened()
  members.clear()
  showOpenTopic()
  // Subscribed now (for its most recent history) and first on every new socket. The topic
  // open before stays subscribed, as every joined topic does.
  socket?.subscribe(topic, { tag: store.openings })
})
// A direct message's people become known after it opens (the server lists them).
store.on('change', showOpenTopic)
store.on('unread-line', (topic, readId) => { if (topic === store.open) log.markUnread(readId) })
document.addEventListener('visibilitychange', () => { store.setVisible(document.visibilityState === 'visible') })

const connectionLabels = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…' }

/** @type {import('./connection.js').ChatSocketListeners} */
const socketListeners = {
  status (state) {
    connectionIndicator.dataset.state = state
    connectionText.textContent = connectionLabels[state]
  },
  user: showUser,
  opened () { void joinedTopics.connected() },
  subscribed (frame, request) {
    if (request?.tag === store.openings && frame.topic === store.open) {
      topicHistory.subscribed(frame)
      members.present(frame.present)
      store.received(frame.topic, frame.history)
    } else if (request?.tag === countingTag) {
      joinedTopics.counting(frame)
    } else {
      // The open topic of a moment ago: its newest messages still count.
      store.received(frame.topic, frame.history)
    }
  },
  frame (frame) {
    if (privateTopics.frame(frame)) return
    const open = frame.topic === store.open
    switch (frame.type) {
      case 'message':
        if (open) topicHistory.message(frame)
        store.received(frame.topic, [frame])
        break
      // Who comes and goes shows in the list of who is here, not in the log: every reload
      // of someone's page would otherwise write a line there for everyone.
      case 'joined':
        if (open) {
          members.joined(frame.user)
          roster.someoneJoined(frame.user)
        }
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

/** The open topic's name in its header and the composer: a direct message's people, a private topic's lock. */
function showOpenTopic () {
  if (store.open === '') return
  const label = topicLabel(store, store.open)
  const locked = isPrivate(store, store.open) && !isDirect(store, store.open)
  if (topicTitle.textContent === label && topicLock.hidden === !locked) return
  topicTitle.textContent = topicTitle.title = label
  topicLock.hidden = !locked
  composer.showTopic(label)
}

function showLogin (message = '') {
  socket?.stop()
  socket = undefined
  account.close()
  adminUsers.close()
  notice.clear()
  composer.clear()
  log.clear()
  // Another person may log in next on this browser.
  store.reset()
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
  socket?.stop()
  socket = undefined
  store.openTopic(picker.topicInHash)
  socket = new ChatSocket({ openTopic: () => ({ topic: store.open, tag: store.openings }), listeners: socketListeners })
  composer.focus()
}

function showUser (user) {
  store.reader = user.name
  account.showUser(user)
  log.me = user.name
  members.me = user.name
  userName.textContent = user.name
  userName.title = user.name
  sessionHint.held = true
}

logoutButton.addEventListener('click', async () => {
  logoutButton.disabled = true
  // Closed by us first, so the close that the logout sends to the session's sockets is for other tabs.
  socket?.stop()
  socket = undefined
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
