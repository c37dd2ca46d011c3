/**
 * @import { ClientEvents, ErrorFrame } from './events.js'
 */
/**
 * What the client's parts send through: the socket open now, if any.
 * @typedef {object} Link
 * @property {(frame: object) => void} send sends on the open socket (nothing when none is)
 * @property {() => boolean} open whether a socket is open
 * @property {(delayMs: number, action: () => void) => void} later runs `action` after `delayMs`, unless the socket drops first
 */
/** @typedef {<K extends keyof ClientEvents>(type: K, event: ClientEvents[K]) => void} Emit */
/** The URL's topic while none is wanted: not a topic name, so the socket starts subscribed to nothing. */
export const noTopic: "-";
/**
 * The topics a client subscribes to, on whichever socket is open: each topic's feed
 * (topic-feed.js), the subscribes asked and not answered, and the promises waiting for a
 * topic to catch up.
 */
export class Subscriptions {
    /** @param {{ link: Link, emit: Emit }} options */
    constructor({ link, emit }: {
        link: Link;
        emit: Emit;
    });
    link: Link;
    emit: Emit;
    /** The topics wanted, in the order they were subscribed. */
    get topics(): string[];
    /**
     * @param {string} topic
     * @param {number | 'recent' | undefined} since
     * @returns {Promise<void>}
     */
    subscribe(topic: string, since: number | "recent" | undefined): Promise<void>;
    /** @param {string} topic */
    unsubscribe(topic: string): void;
    /**
     * The server ended the subscription (the user was removed from a private topic): the topic
     * is no longer wanted, and there is nothing to send. Subscribing again asks anew.
     * @param {string} topic
     */
    removed(topic: string): void;
    /** Whether frames of `topic` are for the user. @param {unknown} topic */
    wants(topic: unknown): boolean;
    /**
     * A new socket is open, subscribed by the server to `urlTopic`: every other topic is asked.
     * @param {string} urlTopic
     */
    opened(urlTopic: string): void;
    dropped(): void;
    /** Closed for good: every promise waiting rejects with `error`. @param {Error} error */
    end(error: Error): void;
    /** A live message or update: whether to tell it (once, in order). @param {{ [field: string]: any }} frame */
    live(frame: {
        [field: string]: any;
    }): boolean;
    /** @param {{ [field: string]: any }} frame a `subscribed` frame */
    subscribed(frame: {
        [field: string]: any;
    }): void;
    /**
     * An error without a ref: the refusal of a subscribe (the one of its topic, or the first
     * asked: the server answers a socket's frames in order). Returns false for the expected
     * `bad_topic` of a socket opened on no topic, which is no news to the user.
     * @param {ErrorFrame} frame
     */
    refused(frame: ErrorFrame): boolean;
    #private;
}
/**
 * What the client's parts send through: the socket open now, if any.
 */
export type Link = {
    /**
     * sends on the open socket (nothing when none is)
     */
    send: (frame: object) => void;
    /**
     * whether a socket is open
     */
    open: () => boolean;
    /**
     * runs `action` after `delayMs`, unless the socket drops first
     */
    later: (delayMs: number, action: () => void) => void;
};
export type Emit = <K extends keyof ClientEvents>(type: K, event: ClientEvents[K]) => void;
import type { ErrorFrame } from './events.js';
import type { ClientEvents } from './events.js';
