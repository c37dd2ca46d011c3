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
export function newRef(): string;
/**
 * An OutboxStore on a Web Storage (the page's localStorage): one JSON array under `key`,
 * read and written again on each change, so that two tabs sharing it keep each other's
 * entries (both may send one: its ref makes that harmless). Storage that is off or full
 * keeps nothing, and never throws.
 * @param {{ getItem(key: string): string | null, setItem(key: string, value: string): void }} storage
 * @param {string} [key]
 * @returns {OutboxStore}
 */
export function storageOutbox(storage: {
    getItem(key: string): string | null;
    setItem(key: string, value: string): void;
}, key?: string): OutboxStore;
/**
 * The publishes not acknowledged yet, in the order they were made, and which of them may be
 * sent now: at most 32 in flight on a socket (sent and not acked, those waiting to be sent
 * again included), which the server promises never to close a client for that pauses when
 * told (docs/protocol.md, Errors). Each keeps its `ref` for good, so a resend (after a refusal
 * or on a new socket) never stores it twice. An optional store keeps them across a reload.
 */
/** Publishes in flight on a socket at most. */
export const maxPublishesInFlight: 32;
export class Outbox {
    /** @param {{ store?: OutboxStore, maxInFlight?: number }} [options] */
    constructor({ store, maxInFlight }?: {
        store?: OutboxStore;
        maxInFlight?: number;
    });
    store: OutboxStore | undefined;
    maxInFlight: number;
    get size(): number;
    get inFlight(): number;
    /** Every entry not acked yet, in order. @returns {OutboxEntry[]} */
    entries(): OutboxEntry[];
    /** @param {string} ref */
    get(ref: string): Pending | undefined;
    /**
     * A new publish, kept (and stored) until it is answered.
     * @param {OutboxEntry} entry
     * @param {Pending['settle']} [settle]
     */
    add(entry: OutboxEntry, settle?: Pending["settle"]): void;
    /**
     * Entries a store kept from before: they go first, as they were made first. One made here
     * already (published before the store was read, and so stored too) keeps its promise.
     * @param {OutboxEntry[]} entries
     */
    restore(entries: OutboxEntry[]): void;
    /**
     * What to send now, marked sent: those due again first, then new ones while fewer than
     * `maxInFlight` are in flight.
     * @returns {OutboxEntry[]}
     */
    takeSendable(): OutboxEntry[];
    /**
     * Answered for good (acked, or refused with an error that resending cannot help): no
     * longer kept. Returns what was kept, with the promise to settle.
     * @param {string} ref
     */
    remove(ref: string): Pending | undefined;
    /**
     * Refused for now: it stays in flight, to be sent again once `due` is called (after its wait).
     * @param {string} ref
     */
    retry(ref: string): void;
    /** A waiting entry's wait is over. @param {string} ref */
    due(ref: string): void;
    /** The socket is gone: everything is sent again, in order, on the next. */
    dropped(): void;
    /**
     * Gives every entry up: their promises reject with `error`. `forget` also empties the
     * store (the user who made them is gone); otherwise a later client sends them.
     * @param {Error} error
     * @param {{ forget: boolean }} options
     */
    abandon(error: Error, { forget }: {
        forget: boolean;
    }): void;
    #private;
}
/**
 * A frame with a `ref`, kept and sent (again) until the server acks it or refuses it for good.
 */
export type OutboxEntry = {
    type: "publish";
    ref: string;
    topic: string;
    text?: string | undefined;
    data?: unknown;
    replyTo?: number | undefined;
};
/**
 * Where unacknowledged publishes are kept across a reload (the page: localStorage; see
 * storageOutbox). `load` is called once, before the first socket; the others as entries come
 * and go. They may throw nothing: a store that fails keeps the entries in memory only.
 */
export type OutboxStore = {
    load: () => OutboxEntry[] | Promise<OutboxEntry[]>;
    put: (entry: OutboxEntry) => void;
    delete: (ref: string) => void;
};
export type Pending = {
    entry: OutboxEntry;
    /**
     * queued: not sent on this socket;
     * sent: waiting for its answer; waiting: refused, to be sent again after a wait; due: to be sent again now
     */
    state: "queued" | "sent" | "waiting" | "due";
    /**
     * `unavailable` answers in a row, for the backoff
     */
    failures: number;
    /**
     * the promise `publish` returned (none for entries restored from the store)
     */
    settle?: {
        resolve: (ack: {
            id: number;
            at: string;
        }) => void;
        reject: (error: Error) => void;
    } | undefined;
};
