// @ts-check

/**
 * The publishes not acknowledged yet, in the order they were made, and which of them may be
 * sent now: at most 32 in flight on a socket (sent and not acked, those waiting to be sent
 * again included), which the server promises never to close a client for that pauses when
 * told (docs/protocol.md, Errors). Each keeps its `ref` for good, so a resend (after a refusal
 * or on a new socket) never stores it twice. An optional store keeps them across a reload.
 */

/** Publishes in flight on a socket at most. */
export const maxPublishesInFlight = 32

/**
 * A frame with a `ref`, kept and sent (again) until the server acks it or refuses it for good.
 * @typedef {object} OutboxEntry
 * @property {'publish'} type
 * @property {string} ref
 * @property {string} topic
 * @property {string} [text]
 * @property {unknown} [data]
 * @property {number} [replyTo]
 */

/**
 * Where unacknowledged publishes are kept across a reload (the page: localStorage; see
 * storageOutbox). `load` is called once, before the first socket; the others as entries come
 * and go. They may throw nothing: a store that fails keeps the entries in memory only.
 * @typedef {object} OutboxStore
 * @property {() => OutboxEntry[] | Promise<OutboxEntry[]>} load
 * @property {(entry: OutboxEntry) => void} put
 * @property {(ref: string) => void} delete
 */

/**
 * @typedef {object} Pending
 * @property {OutboxEntry} entry
 * @property {'queued' | 'sent' | 'waiting' | 'due'} state queued: not sent on this socket;
 *   sent: waiting for its answer; waiting: refused, to be sent again after a wait; due: to be sent again now
 * @property {number} failures `unavailable` answers in a row, for the backoff
 * @property {{ resolve: (ack: { id: number, at: string }) => void, reject: (error: Error) => void }} [settle]
 *   the promise `publish` returned (none for entries restored from the store)
 */

/** A ref unique to one message: random, 32 hex digits. */
export function newRef () {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('')
}

export class Outbox {
  /** @type {Map<string, Pending>} in the order they were made */
  #pending = new Map()
  /** Entries counted in flight on this socket (sent, waiting or due). */
  #inFlight = 0

  /** @param {{ store?: OutboxStore, maxInFlight?: number }} [options] */
  constructor ({ store, maxInFlight = maxPublishesInFlight } = {}) {
    this.store = store
    this.maxInFlight = maxInFlight
  }

  get size () {
    return this.#pending.size
  }

  get inFlight () {
    return this.#inFlight
  }

  /** Every entry not acked yet, in order. @returns {OutboxEntry[]} */
  entries () {
    return [...this.#pending.values()].map((pending) => pending.entry)
  }

  /** @param {string} ref */
  get (ref) {
    return this.#pending.get(ref)
  }

  /**
   * A new publish, kept (and stored) until it is answered.
   * @param {OutboxEntry} entry
   * @param {Pending['settle']} [settle]
   */
  add (entry, settle) {
    this.#pending.set(entry.ref, { entry, state: 'queued', failures: 0, settle })
    this.store?.put(entry)
  }

  /**
   * Entries a store kept from before: they go first, as they were made first. One made here
   * already (published before the store was read, and so stored too) keeps its promise.
   * @param {OutboxEntry[]} entries
   */
  restore (entries) {
    const later = new Map(this.#pending)
    this.#pending.clear()
    for (const entry of entries) this.#pending.set(entry.ref, later.get(entry.ref) ?? { entry, state: 'queued', failures: 0 })
    for (const [ref, pending] of later) if (!this.#pending.has(ref)) this.#pending.set(ref, pending)
  }

  /**
   * What to send now, marked sent: those due again first, then new ones while fewer than
   * `maxInFlight` are in flight.
   * @returns {OutboxEntry[]}
   */
  takeSendable () {
    const due = [...this.#pending.values()].filter((pending) => pending.state === 'due')
    for (const pending of this.#pending.values()) {
      if (this.#inFlight >= this.maxInFlight) break
      if (pending.state !== 'queued') continue
      this.#inFlight += 1
      due.push(pending)
    }
    for (const pending of due) pending.state = 'sent'
    return due.map((pending) => pending.entry)
  }

  /**
   * Answered for good (acked, or refused with an error that resending cannot help): no
   * longer kept. Returns what was kept, with the promise to settle.
   * @param {string} ref
   */
  remove (ref) {
    const pending = this.#pending.get(ref)
    if (pending === undefined) return undefined
    this.#pending.delete(ref)
    if (pending.state !== 'queued') this.#inFlight -= 1
    this.store?.delete(ref)
    return pending
  }

  /**
   * Refused for now: it stays in flight, to be sent again once `due` is called (after its wait).
   * @param {string} ref
   */
  retry (ref) {
    const pending = this.#pending.get(ref)
    if (pending === undefined || pending.state === 'queued') return
    pending.state = 'waiting'
  }

  /** A waiting entry's wait is over. @param {string} ref */
  due (ref) {
    const pending = this.#pending.get(ref)
    if (pending?.state === 'waiting') pending.state = 'due'
  }

  /** The socket is gone: everything is sent again, in order, on the next. */
  dropped () {
    for (const pending of this.#pending.values()) pending.state = 'queued'
    this.#inFlight = 0
  }

  /**
   * Gives every entry up: their promises reject with `error`. `forget` also empties the
   * store (the user who made them is gone); otherwise a later client sends them.
   * @param {Error} error
   * @param {{ forget: boolean }} options
   */
  abandon (error, { forget }) {
    for (const pending of this.#pending.values()) {
      pending.settle?.reject(error)
      if (forget) this.store?.delete(pending.entry.ref)
    }
    this.#pending.clear()
    this.#inFlight = 0
  }
}

/**
 * An OutboxStore on a Web Storage (the page's localStorage): one JSON array under `key`,
 * read and written again on each change, so that two tabs sharing it keep each other's
 * entries (both may send one: its ref makes that harmless). Storage that is off or full
 * keeps nothing, and never throws.
 * @param {{ getItem(key: string): string | null, setItem(key: string, value: string): void }} storage
 * @param {string} [key]
 * @returns {OutboxStore}
 */
export function storageOutbox (storage, key = 'canopy.outbox') {
  /** @returns {OutboxEntry[]} */
  const read = () => {
    try {
      const entries = JSON.parse(storage.getItem(key) ?? '[]')
      return Array.isArray(entries) ? entries.filter(isEntry) : []
    } catch {
      return []
    }
  }
  /** @param {OutboxEntry[]} entries */
  const write = (entries) => {
    try { storage.setItem(key, JSON.stringify(entries)) } catch { /* kept in memory only */ }
  }
  return {
    load: read,
    put (entry) { write([...read().filter((kept) => kept.ref !== entry.ref), entry]) },
    delete (ref) {
      const entries = read()
      const kept = entries.filter((entry) => entry.ref !== ref)
      if (kept.length !== entries.length) write(kept)
    }
  }
}

/** @param {unknown} value @returns {value is OutboxEntry} */
function isEntry (value) {
  if (typeof value !== 'object' || value === null) return false
  const entry = /** @type {Record<string, unknown>} */ (value)
  return entry.type === 'publish' && typeof entry.ref === 'string' && typeof entry.topic === 'string'
}
