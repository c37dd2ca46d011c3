/** @import { Entry } from './events.js' */
/** What a topic name is (docs/protocol.md, Names and texts). */
export const topicPattern: RegExp;
/**
 * One topic's place in its log, and what to ask the server so that its user gets every entry
 * (message or change) once, in id order, across any number of dropped sockets.
 *
 * `held` is the id up to which every entry has been told to the user. An entry is told only
 * when it continues what is held: from a reply to a subscribe (the most recent history when
 * nothing is held yet, else everything after `held`, cut by `truncated`) or live, on a socket
 * whose live feed is known to continue `held` (`continuous`). Everything else is left to the
 * catch-up, which asks `since: held` until a reply is no longer truncated: the server sends
 * nothing live meanwhile and resumes from that reply's end (docs/protocol.md, Catching up).
 * A socket that drops mid-way leaves `held` where the last reply stopped, and the next one
 * goes on from there. Nothing here counts on ids being consecutive, only on each reply and
 * each socket's live feed being without holes.
 */
export class TopicFeed {
    /**
     * @param {string} topic
     * @param {number} [held] every entry up to this id is held already (a `since` given by the user)
     */
    constructor(topic: string, held?: number);
    topic: string;
    /** @type {number | undefined} */
    held: number | undefined;
    /** Whether the user wants the topic: subscribed, and not unsubscribed since. */
    wanted: boolean;
    /** This socket's live feed continues `held`: a live entry after it can be told. */
    continuous: boolean;
    /**
     * The subscribes asked on this socket and not answered yet, in order: a reply is read
     * as the answer to the first (`plain`: the most recent history; `since`: after `held`).
     * @type {Array<'plain' | 'since'>}
     */
    asks: Array<"plain" | "since">;
    /** How many of the first `asks` were asked before a restart: their answers are ignored. */
    stale: number;
    /** Unavailable subscribes in a row, for the backoff before the next. */
    failures: number;
    /**
     * Starts again from `since`: a number (everything after it, told even if it was told
     * before), or `recent` (the most recent history, as if nothing were held).
     * @param {number | 'recent'} since
     */
    restart(since: number | "recent"): void;
    /** The topic is live on this socket: every entry up to now has been told, and nothing is asked. */
    get caughtUp(): boolean;
    /** The subscribe to send now. @returns {{ type: 'subscribe', topic: string, since?: number }} */
    ask(): {
        type: "subscribe";
        topic: string;
        since?: number;
    };
    /** The server subscribed a new socket to this topic as it opened (the URL's topic): a plain subscribe. */
    askedOnOpen(): void;
    /**
     * The first subscribe asked was refused: it is no longer waiting for an answer.
     * @returns {boolean} whether it was asked since the last restart (then ask again)
     */
    refused(): boolean;
    /**
     * A `subscribed` frame of this topic.
     * @param {{ history: Entry[], truncated?: boolean, lastId?: number }} frame
     * @returns {{ entries: Entry[], more: boolean }} entries: what to tell the user, in order;
     *   more: the topic is not caught up and nothing else is asked: ask again (`ask`)
     */
    subscribed(frame: {
        history: Entry[];
        truncated?: boolean;
        lastId?: number;
    }): {
        entries: Entry[];
        more: boolean;
    };
    /**
     * A live entry: whether to tell it (it continues what is held), which then holds it.
     * @param {{ id: number }} entry
     */
    live(entry: {
        id: number;
    }): boolean;
    /** The socket is gone: a new one asks again. */
    dropped(): void;
}
import type { Entry } from './events.js';
