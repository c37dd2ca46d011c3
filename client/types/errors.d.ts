/**
 * Why a publish or a subscribe failed for good: the server's error code (`too_long`,
 * `forbidden`, `bad_request`, …, docs/protocol.md), or the client's own: `closed` (the
 * client was closed first), `unauthorized` (the session, key or token is no longer
 * accepted), `unsubscribed` (the topic was unsubscribed before it caught up).
 */
export class CanopyError extends Error {
    /**
     * @param {string} code
     * @param {string} message
     * @param {{ ref?: string, topic?: string }} [about] the publish (its ref) or the topic it is about
     */
    constructor(code: string, message: string, about?: {
        ref?: string;
        topic?: string;
    });
    code: string;
    ref: string | undefined;
    topic: string | undefined;
}
