/**
 * A client's publishes, from `publish` to their ack: kept in the outbox, sent while fewer
 * than 32 are in flight, sent again after `rate_limited` once its `retryAfterMs` is over,
 * after `unavailable` after a backoff, and on every new socket, always with their first `ref`.
 */
export class Publishing {
    /** @param {{ link: Link, store?: OutboxStore }} options */
    constructor({ link, store }: {
        link: Link;
        store?: OutboxStore;
    });
    link: Link;
    /** How many are not acknowledged yet. */
    get size(): number;
    /** @returns {OutboxEntry[]} */
    pending(): OutboxEntry[];
    /** @param {OutboxEntry[]} entries kept by the store from before: they go first */
    restore(entries: OutboxEntry[]): void;
    /**
     * @param {string} topic
     * @param {string | { text?: string, data?: unknown, replyTo?: number }} body
     * @param {string} ref
     * @returns {Promise<{ id: number, at: string }>}
     */
    publish(topic: string, body: string | {
        text?: string;
        data?: unknown;
        replyTo?: number;
    }, ref: string): Promise<{
        id: number;
        at: string;
    }>;
    /** Sends what may be sent now. */
    flush(): void;
    /**
     * An ack: the publish it answers is done (its promise resolves). The next are sent by
     * `flush`, once the ack has been told.
     * @param {AckFrame} frame
     * @returns {boolean} whether it acks one of these publishes
     */
    acked(frame: AckFrame): boolean;
    /** @param {ErrorFrame} frame @returns {boolean} whether it refuses one of these publishes */
    refused(frame: ErrorFrame): boolean;
    /** The socket is gone: everything not acked goes again on the next, in order. */
    dropped(): void;
    /**
     * Closed for good: every promise rejects with `error`; `forget` also empties the store.
     * @param {Error} error
     * @param {{ forget: boolean }} options
     */
    end(error: Error, options: {
        forget: boolean;
    }): void;
    #private;
}
import type { Link } from './subscriptions.js';
import type { OutboxEntry } from './outbox.js';
import type { AckFrame } from './events.js';
import type { ErrorFrame } from './events.js';
import type { OutboxStore } from './outbox.js';
