/**
 * @import { Auth, Fetch } from './auth.js'
 * @import { BackoffOptions, WakeupTargets } from './backoff.js'
 * @import { AckFrame, ClientEvents, ErrorFrame, StateChange, UnsubscribedFrame } from './events.js'
 * @import { OutboxEntry, OutboxStore } from './outbox.js'
 * @import { WebSocketClass } from './socket.js'
 * @import { Link } from './subscriptions.js'
 */
/**
 * @typedef {object} ClientOptions
 * @property {string} [url] the server's base URL (http(s) or ws(s)); in a browser, the page's origin by default
 * @property {Auth} [auth] a session (the default: the browser's own), a bot's key or a token
 * @property {WebSocketClass} [WebSocket] the WebSocket class; globalThis.WebSocket by default (Node 20 has none: pass `ws`'s)
 * @property {Fetch} [fetch] for GET /api/me; globalThis.fetch by default
 * @property {OutboxStore} [outbox] keeps unacknowledged publishes across a reload
 * @property {BackoffOptions} [backoff] reconnection delays
 * @property {WakeupTargets} [wakeups] where `online` and `visibilitychange` are heard; the browser's by default
 */
/** @extends {Emitter<ClientEvents>} */
export class CanopyClient extends Emitter<ClientEvents> {
    /** @param {ClientOptions} [options] */
    constructor(options?: ClientOptions);
    url: string;
    WebSocket: WebSocketClass;
    /** @type {Auth} */
    auth: Auth;
    /** @type {Fetch} */
    fetch: Fetch;
    /** The connection's state now (the last `state` event's). */
    get state(): "connecting" | "open" | "reconnecting" | "closed";
    /** The topics subscribed to, in the order they were subscribed. */
    get topics(): string[];
    /** Publishes not acknowledged yet (restored from the outbox store included), in order. @returns {OutboxEntry[]} */
    pending(): OutboxEntry[];
    /**
     * Subscribes to `topic`: its messages come as `message` events, each once, in id order, for
     * as long as it stays subscribed, across reconnections. The promise resolves once the
     * topic is caught up (live) and rejects if the server refuses it for good.
     * @param {string} topic
     * @param {{ since?: number | 'recent' }} [options] since: every entry after this id (told
     *   even if told before), or `recent`: the most recent history; by default where this
     *   client left off in the topic, or its most recent history the first time
     * @returns {Promise<void>}
     */
    subscribe(topic: string, { since }?: {
        since?: number | "recent";
    }): Promise<void>;
    /** Unsubscribes from `topic`; where it stands is kept, for a later subscribe to go on from. @param {string} topic */
    unsubscribe(topic: string): void;
    /**
     * Publishes to `topic` (no subscription needed): sent now, or when a socket is open, and
     * again until the server acknowledges it. Resolves with the stored message's id and time;
     * rejects with a CanopyError when the server refuses it for good (or the client closes first).
     * @param {string} topic
     * @param {string | { text?: string, data?: unknown, replyTo?: number }} body the text, or the fields
     * @param {{ ref?: string }} [options] ref: this message's own ref (1–64 characters, never reused); a random one by default
     * @returns {Promise<{ id: number, at: string }>}
     */
    publish(topic: string, body: string | {
        text?: string;
        data?: unknown;
        replyTo?: number;
    }, { ref }?: {
        ref?: string;
    }): Promise<{
        id: number;
        at: string;
    }>;
    /** Resolves once every publish made so far is answered (rejects if the client ends first). @returns {Promise<void>} */
    allAcked(): Promise<void>;
    /** Closes for good. Unacknowledged publishes reject with `closed` and stay in the outbox store, for a later client. */
    close(): void;
    #private;
}
export type ClientOptions = {
    /**
     * the server's base URL (http(s) or ws(s)); in a browser, the page's origin by default
     */
    url?: string | undefined;
    /**
     * a session (the default: the browser's own), a bot's key or a token
     */
    auth?: Auth | undefined;
    /**
     * the WebSocket class; globalThis.WebSocket by default (Node 20 has none: pass `ws`'s)
     */
    WebSocket?: WebSocketClass | undefined;
    /**
     * for GET /api/me; globalThis.fetch by default
     */
    fetch?: Fetch | undefined;
    /**
     * keeps unacknowledged publishes across a reload
     */
    outbox?: OutboxStore | undefined;
    /**
     * reconnection delays
     */
    backoff?: BackoffOptions | undefined;
    /**
     * where `online` and `visibilitychange` are heard; the browser's by default
     */
    wakeups?: WakeupTargets | undefined;
};
import type { ClientEvents } from './events.js';
import { Emitter } from './events.js';
import type { WebSocketClass } from './socket.js';
import type { Auth } from './auth.js';
import type { Fetch } from './auth.js';
import type { OutboxEntry } from './outbox.js';
import type { OutboxStore } from './outbox.js';
import type { BackoffOptions } from './backoff.js';
import type { WakeupTargets } from './backoff.js';
