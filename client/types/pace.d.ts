/**
 * When a client may send: the pause a `rate_limited` asks for (nothing is published or
 * subscribed until it is over, whatever socket is open then, since the publish rate is the
 * user's), and the resends waiting on one socket (dropped with it: a new socket sends
 * everything afresh).
 */
export class Pace {
    /** @param {{ resumed: () => void, now?: () => number }} options resumed: the pause is over */
    constructor({ resumed, now }: {
        resumed: () => void;
        now?: () => number;
    });
    resumed: () => void;
    now: () => number;
    get paused(): boolean;
    /** Holds sending back for `delayMs`, unless a pause that ends later holds it already. @param {number} delayMs */
    pauseFor(delayMs: number): void;
    /** Runs `action` after `delayMs`, unless the socket drops first. @param {number} delayMs @param {() => void} action */
    later(delayMs: number, action: () => void): void;
    /** The socket is gone: its resends with it. The pause stays. */
    dropped(): void;
    /** Closed for good. */
    stop(): void;
    #private;
}
