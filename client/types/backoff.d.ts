/**
 * The delay before the next try, after `failures` tries that failed in a row: anywhere from 0
 * up to the ceiling, which starts at `firstDelayMs` and doubles up to `maxDelayMs`.
 * @param {number} failures
 * @param {BackoffOptions} [options]
 * @param {() => number} [random] uniform in [0, 1)
 * @returns {number}
 */
export function backoffDelayMs(failures: number, options?: BackoffOptions, random?: () => number): number;
/**
 * How long a refused publish or subscribe waits before it goes again: the `retryAfterMs` of a
 * `rate_limited` (the server staggers them, so that they do not all come back at once), or a
 * backoff after `unavailable` answers in a row.
 * @param {{ code: string, retryAfterMs?: number }} refusal
 * @param {number} failures `unavailable` answers in a row, this one included
 */
export function resendDelayMs(refusal: {
    code: string;
    retryAfterMs?: number;
}, failures: number): number;
/**
 * What the client does after a socket closed: reconnect after a backoff, at once, or never.
 * @typedef {{ reconnect: 'backoff' | 'now' | 'never', reason?: string }} AfterClose
 */
/**
 * The close codes of docs/protocol.md, as the client acts on them. `refusedStatus` is the
 * HTTP status of an upgrade the server refused (when the WebSocket implementation tells it).
 * @param {{ code?: number, refusedStatus?: number, authKind: 'session' | 'key' | 'token' }} close
 *   code: undefined when no socket could be opened (the server did not answer, say)
 * @returns {AfterClose}
 */
export function afterClose({ code, refusedStatus, authKind }: {
    code?: number;
    refusedStatus?: number;
    authKind: "session" | "key" | "token";
}): AfterClose;
/**
 * @typedef {object} WakeupTargets where the client hears that now is a good time to try again
 * @property {{ addEventListener(type: string, listener: () => void): void, removeEventListener(type: string, listener: () => void): void }} [window]
 *   its `online` event: the network is back
 * @property {{ visibilityState?: string, addEventListener(type: string, listener: () => void): void, removeEventListener(type: string, listener: () => void): void }} [document]
 *   its `visibilitychange` event, to `visible`: the tab is shown again
 */
/** The browser's window and document, when there are any (none in Node). @returns {WakeupTargets} */
export function browserWakeups(): WakeupTargets;
/**
 * Calls `wake` when the network comes back or the tab is shown again.
 * @param {WakeupTargets} targets
 * @param {() => void} wake
 * @returns {() => void} stops listening
 */
export function onWakeup(targets: WakeupTargets, wake: () => void): () => void;
/**
 * When to try again after a connection is lost: exponential backoff with full jitter (each
 * delay drawn at random below a ceiling that doubles), so that the clients of a restarted
 * server do not all come back at once; what each close code means; and an immediate try
 * when the browser comes back online or the tab is shown again, because a background tab's
 * timers are throttled and a laptop that wakes up should not wait out a long delay.
 */
/**
 * @typedef {object} BackoffOptions
 * @property {number} firstDelayMs the ceiling of the first delay (doubled after each failure)
 * @property {number} maxDelayMs the ceiling never goes above this
 */
/** @type {Readonly<BackoffOptions>} */
export const defaultBackoff: Readonly<BackoffOptions>;
/**
 * The one timer that starts the next connection, with the count of failures it backs off by.
 */
export class Retry {
    /**
     * @param {{ backoff?: BackoffOptions, random?: () => number, wakeups?: WakeupTargets, connect: () => void }} options
     */
    constructor({ backoff, random, wakeups, connect }: {
        backoff?: BackoffOptions;
        random?: () => number;
        wakeups?: WakeupTargets;
        connect: () => void;
    });
    backoff: BackoffOptions;
    random: () => number;
    connect: () => void;
    /** Tries that failed in a row: reset once a socket works end to end. */
    failures: number;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    timer: ReturnType<typeof setTimeout> | undefined;
    stopWakeups: () => void;
    /**
     * Schedules the next try after a backoff, or at once (unless the last try failed too: a
     * server that keeps closing is not hammered); returns its delay.
     * @param {'backoff' | 'now'} when
     */
    schedule(when: "backoff" | "now"): number;
    /** Tries now, instead of when the timer says. */
    now(): void;
    cancel(): void;
    /** The connection works: the next drop starts the backoff afresh. */
    succeeded(): void;
    stop(): void;
}
/**
 * What the client does after a socket closed: reconnect after a backoff, at once, or never.
 */
export type AfterClose = {
    reconnect: "backoff" | "now" | "never";
    reason?: string;
};
/**
 * where the client hears that now is a good time to try again
 */
export type WakeupTargets = {
    /**
     * its `online` event: the network is back
     */
    window?: {
        addEventListener(type: string, listener: () => void): void;
        removeEventListener(type: string, listener: () => void): void;
    } | undefined;
    /**
     * its `visibilitychange` event, to `visible`: the tab is shown again
     */
    document?: {
        visibilityState?: string;
        addEventListener(type: string, listener: () => void): void;
        removeEventListener(type: string, listener: () => void): void;
    } | undefined;
};
export type BackoffOptions = {
    /**
     * the ceiling of the first delay (doubled after each failure)
     */
    firstDelayMs: number;
    /**
     * the ceiling never goes above this
     */
    maxDelayMs: number;
};
