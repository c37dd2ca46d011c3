// @ts-check

/**
 * The events a client tells its user, with their types, and the small typed emitter that
 * tells them. Frames keep the shapes of docs/protocol.md; fields a later server adds come
 * through unchanged.
 */

/**
 * A stored message, live or from a `subscribed` reply.
 * @typedef {object} Message
 * @property {'message'} type
 * @property {string} topic
 * @property {number} id gapless within its topic
 * @property {string} author
 * @property {string} text
 * @property {string} at ISO-8601, the server's time
 * @property {unknown} [data] a JSON value published with it
 * @property {number} [replyTo]
 * @property {true} [bot]
 */

/**
 * A change to a message (edit, delete, reaction): the topic's next id, like a message.
 * @typedef {object} Update
 * @property {'update'} type
 * @property {string} topic
 * @property {number} id
 * @property {number} target the id of the message changed
 * @property {string} kind `edit`, `delete` or `reaction`
 * @property {string} author who made the change
 * @property {string} at
 * @property {string} [text]
 * @property {string} [emoji]
 * @property {boolean} [on]
 */

/** @typedef {Message | Update} Entry an entry of a topic's log: every one has the topic's next id */

/**
 * The answer to a subscribe. Its history has already been told as `message` and `update`
 * events (each entry once, in order), so it is not repeated here.
 * @typedef {object} SubscribedEvent
 * @property {string} topic
 * @property {string[]} present who is in the topic now, sorted
 * @property {boolean} truncated more is coming: the client is catching up
 * @property {boolean} caughtUp the topic is live on this socket: every entry up to now has been told
 */

/** @typedef {{ type: 'joined' | 'left', topic: string, user: string }} PresenceFrame */
/** @typedef {{ type: 'typing', topic: string, user: string }} TypingFrame */
/** @typedef {{ type: 'unsubscribed', topic: string, reason?: 'removed' }} UnsubscribedFrame */
/** @typedef {{ type: 'ack', ref: string, id: number, at: string }} AckFrame */
/**
 * @typedef {object} ErrorFrame
 * @property {'error'} type
 * @property {string} code
 * @property {string} message
 * @property {string} [ref] the publish it answers
 * @property {string} [topic] the subscribe it answers (a `rate_limited` one)
 * @property {number} [retryAfterMs]
 */

/**
 * A change of the connection's state.
 * @typedef {object} StateChange
 * @property {'connecting' | 'open' | 'reconnecting' | 'closed'} state
 * @property {number} [code] the close code of the socket that ended, when one did
 * @property {string} [reason] why: the server's close reason, or `logged out`, `unauthorized`, `closed by the client`
 * @property {boolean} willReconnect
 * @property {number} [delayMs] when reconnecting: the wait before the next try
 */

/**
 * Every event, by name, with what its listeners get.
 * @typedef {object} ClientEvents
 * @property {StateChange} state
 * @property {Message} message each message of a subscribed topic, once, in id order
 * @property {Update} update each change of a subscribed topic, once, in id order with its messages
 * @property {SubscribedEvent} subscribed
 * @property {UnsubscribedFrame} unsubscribed
 * @property {PresenceFrame} joined
 * @property {PresenceFrame} left
 * @property {TypingFrame} typing
 * @property {AckFrame} ack a publish is stored (its promise resolves too)
 * @property {ErrorFrame} error every error the server sends; `rate_limited` and `unavailable` are resent by the client
 * @property {{ type: string, [field: string]: unknown }} frame a frame of a type this client does not know
 */

/**
 * A typed event emitter: `on` returns the function that removes the listener.
 * @template {object} Events
 */
export class Emitter {
  /** @type {Map<keyof Events, Set<(event: any) => void>>} */
  #listeners = new Map()

  /**
   * @template {keyof Events} K
   * @param {K} type
   * @param {(event: Events[K]) => void} listener
   * @returns {() => void} removes the listener
   */
  on (type, listener) {
    let listeners = this.#listeners.get(type)
    if (listeners === undefined) this.#listeners.set(type, listeners = new Set())
    listeners.add(listener)
    return () => { this.off(type, listener) }
  }

  /**
   * @template {keyof Events} K
   * @param {K} type
   * @param {(event: Events[K]) => void} listener
   */
  off (type, listener) {
    this.#listeners.get(type)?.delete(listener)
  }

  /**
   * The next event of this type (that `accept` accepts).
   * @template {keyof Events} K
   * @param {K} type
   * @param {(event: Events[K]) => boolean} [accept]
   * @returns {Promise<Events[K]>}
   */
  once (type, accept = () => true) {
    return new Promise((resolve) => {
      const off = this.on(type, (event) => {
        if (!accept(event)) return
        off()
        resolve(event)
      })
    })
  }

  /**
   * Tells every listener; one that throws does not keep the others (or the client) from
   * going on: its error is thrown again on its own, where the program sees it.
   * @protected
   * @template {keyof Events} K
   * @param {K} type
   * @param {Events[K]} event
   */
  emit (type, event) {
    for (const listener of [...this.#listeners.get(type) ?? []]) {
      try {
        listener(event)
      } catch (error) {
        queueMicrotask(() => { throw error })
      }
    }
  }
}
