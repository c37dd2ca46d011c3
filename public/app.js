import { Account } from './account.js'
import { AdminUsers } from './admin-users.js'
import { CanopyClient, storageOutbox } from '/client/index.js'
import { logout, me } from './api.js'
import { AuthView } from './auth-view.js'
import { Composer } from './composer.js'
import { JoinedTopics } from './joined-topics.js'
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
 * (topic-store.js); the parts below read it and act on its events. The client library
 * (/client/, docs/client.md) carries every joined topic on one socket: it reconnects, catches
 * up on what a drop missed (each message told once, in order) and resends what was typed,
 * from an outbox kept in localStorage, so a reload loses nothing. Private topics and direct messages come and go with the reader's membership
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

/** @type {CanopyClient | undefined} */
let client
/** Where the outbox is kept: the page's localStorage, unless storage is off. */
const outboxStorage = (() => {
  try { return window.localStorage } catch { return undefined }
})()
const outboxKey = 'canopy.outbox'

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
const joinedTopics = new JoinedTopics(store, { client: () => client, sessionEnded })
const topicHistory = new TopicHistory({
  log,
  store,
  listeners: {
    connected: () => client !== undefined,
    sessionEnded
  }
})
const composer = new Composer(log, { publish })
new TopicList(store) // eslint-disable-line no-new
new NewTopic(store, { created: topicChosen, sessionEnded }) // eslint-disable-line no-new

store.on('open', () => {
  composer.clear()
  topicHistory.opened()
  members.clear()
  showOpenTopic()
  // Its most recent history afresh, for the log (it stays subscribed, as every joined topic is).
  subscribeOpen()
})
// A direct message's people become known after it opens (the server lists them).
store.on('change', showOpenTopic)
store.on('unread-line', (topic, readId) => { if (topic === store.open) log.markUnread(readId) })
// No longer a member: not subscribed, so that being added again subscribes it afresh.
store.on('removed', (topic) => { client?.unsubscribe(topic) })
document.addEventListener('visibilitychange', () => { store.setVisible(document.visibilityState === 'visible') })

const connectionLabels = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…' }
const resentErrors = new Set(['rate_limited', 'unavailable'])

/** @param {'connecting' | 'connected' | 'reconnecting'} state */
function showConnection (state) {
  connectionIndicator.dataset.state = state
  connectionText.textContent = connectionLabels[state]
}

/** The open topic, subscribed for its most recent history; the publishes kept for it show as pending. */
function subscribeOpen () {
  if (client === undefined || store.open === '') return
  // A refusal (a private topic the reader is not in) comes as the client's `error` event too.
  void client.subscribe(store.open, { since: 'recent' }).catch(() => {})
  showKeptPublishes()
}

function showKeptPublishes () {
  if (client === undefined) return
  composer.showPending(client.pending().filter((entry) => entry.topic === store.open))
}

/** @param {string} text @returns {{ ref: string } | undefined} */
function publish (text) {
  if (client === undefined || store.open === '') return undefined
  const ref = newRef()
  // Its ack and a refusal come as the client's `ack` and `error` events, as those of publishes kept from before do.
  void client.publish(store.open, text, { ref }).catch(() => {})
  return { ref }
}

/** A ref unique to this message; crypto.randomUUID needs a secure context, getRandomValues does not. */
function newRef () {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID()
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (byte) => byte.toString(16).padStart(2, '0')).join('')
}

/**
 * Messages told by the client and not shown yet, by topic: a history comes as one message
 * event each, and is shown (and counted) at once, not a message at a time.
 * @type {Map<string, Array<import('/client/index.js').Message>>}
 */
const told = new Map()

function flushTold () {
  const batches = [...told]
  told.clear()
  for (const [topic, messages] of batches) {
    if (topic === store.open) topicHistory.messages(messages)
    store.received(topic, messages)
  }
}

/** The client of a reader who entered the chat, and what its events do to the page. */
function connect () {
  const current = new CanopyClient({ outbox: outboxStorage === undefined ? undefined : storageOutbox(outboxStorage, outboxKey) })
  const mine = () => current === client
  current.on('state', (change) => {
    if (!mine()) return
    if (change.state === 'connecting') {
      showConnection('connecting')
      // The publishes kept from before the reload are read by now.
      showKeptPublishes()
    } else if (change.state === 'open') {
      void joinedTopics.connected()
      // Who the reader is, as the server says now (an administrator or not). The client asks
      // /api/me for its ticket itself, and tells a session that ended (a 401) by closing.
      me().then(({ user }) => { if (mine()) showUser(user) }, () => {})
    } else if (change.state === 'reconnecting') {
      showConnection('reconnecting')
      members.stale()
    } else {
      // The session ended: closed by the server on logout, or refused before the socket.
      client = undefined
      sessionEnded()
    }
  })
  current.on('subscribed', (event) => {
    if (!mine()) return
    // Its history was told just before.
    flushTold()
    showConnection('connected')
    if (event.topic !== store.open) return
    topicHistory.subscribed(event)
    members.present(event.present)
  })
  current.on('message', (message) => {
    if (!mine()) return
    const messages = told.get(message.topic)
    if (messages === undefined) told.set(message.topic, [message])
    else messages.push(message)
    if (told.size === 1 && messages === undefined) queueMicrotask(flushTold)
  })
  // Who comes and goes shows in the list of who is here, not in the log: every reload
  // of someone's page would otherwise write a line there for everyone.
  current.on('joined', (frame) => {
    if (!mine() || frame.topic !== store.open) return
    members.joined(frame.user)
    roster.someoneJoined(frame.user)
  })
  current.on('left', (frame) => {
    if (mine() && frame.topic === store.open) members.left(frame.user)
  })
  current.on('unsubscribed', (frame) => { if (mine()) privateTopics.frame(frame) })
  current.on('frame', (frame) => { if (mine()) privateTopics.frame(frame) })
  current.on('ack', (ack) => { if (mine()) composer.acknowledged(ack, ack) })
  current.on('error', (error) => {
    if (!mine()) return
    if (error.ref !== undefined) {
      if (resentErrors.has(error.code)) composer.retrying({ ref: error.ref }, error)
      else composer.failed({ ref: error.ref }, error)
      return
    }
    // Sent again by the client after its wait.
    if (resentErrors.has(error.code)) return
    if (!privateTopics.frame(error)) log.notice(`The server says: ${error.message}`)
  })
  return current
}

/** Closes the client for good (logging out): what it had not sent is not sent for whoever logs in next. */
function disconnect () {
  const current = client
  client = undefined
  told.clear()
  current?.close()
  if (current !== undefined) {
    try { outboxStorage?.removeItem(outboxKey) } catch { /* storage off */ }
  }
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
  disconnect()
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
  disconnect()
  client = connect()
  store.openTopic(picker.topicInHash)
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
  disconnect()
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
