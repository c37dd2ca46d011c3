// @ts-check

/**
 * @canopy/client: the client of Canopy's /chat for the browser (no dependencies, no build
 * step) and for Node 20+ (with a WebSocket class passed in, `ws`'s). See docs/client.md.
 */

export { CanopyClient } from './client.js'
export { CanopyError } from './errors.js'
export { sessionLogin, Unauthorized } from './auth.js'
export { storageOutbox, maxPublishesInFlight } from './outbox.js'
export { backoffDelayMs, defaultBackoff } from './backoff.js'

/**
 * @typedef {import('./client.js').ClientOptions} ClientOptions
 * @typedef {import('./auth.js').Auth} Auth
 * @typedef {import('./auth.js').SessionAuth} SessionAuth
 * @typedef {import('./auth.js').KeyAuth} KeyAuth
 * @typedef {import('./auth.js').TokenAuth} TokenAuth
 * @typedef {import('./auth.js').Fetch} Fetch
 * @typedef {import('./events.js').ClientEvents} ClientEvents
 * @typedef {import('./events.js').Message} Message
 * @typedef {import('./events.js').Update} Update
 * @typedef {import('./events.js').Entry} Entry
 * @typedef {import('./events.js').SubscribedEvent} SubscribedEvent
 * @typedef {import('./events.js').StateChange} StateChange
 * @typedef {import('./events.js').AckFrame} AckFrame
 * @typedef {import('./events.js').ErrorFrame} ErrorFrame
 * @typedef {import('./events.js').PresenceFrame} PresenceFrame
 * @typedef {import('./events.js').TypingFrame} TypingFrame
 * @typedef {import('./outbox.js').OutboxEntry} OutboxEntry
 * @typedef {import('./outbox.js').OutboxStore} OutboxStore
 * @typedef {import('./backoff.js').BackoffOptions} BackoffOptions
 * @typedef {import('./backoff.js').WakeupTargets} WakeupTargets
 * @typedef {import('./socket.js').WebSocketClass} WebSocketClass
 */
