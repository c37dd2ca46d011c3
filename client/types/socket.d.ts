/**
 * @typedef {object} SocketListeners
 * @property {() => void} open
 * @property {(frame: { type: string, [field: string]: any }) => void} frame
 * @property {(close: { code: number, reason: string, refusedStatus?: number }) => void} close
 */
export class Socket {
    /**
     * @param {{ WebSocket: WebSocketClass, url: string, headers?: Record<string, string>, listeners: SocketListeners }} options
     */
    constructor({ WebSocket, url, headers, listeners }: {
        WebSocket: WebSocketClass;
        url: string;
        headers?: Record<string, string>;
        listeners: SocketListeners;
    });
    listeners: SocketListeners;
    socket: WebSocketLike;
    get open(): boolean;
    /** @param {object} frame */
    send(frame: object): void;
    /**
     * Runs `action` after `delayMs`, unless the socket closes first: a new socket sends
     * everything afresh.
     * @param {number} delayMs
     * @param {() => void} action
     */
    later(delayMs: number, action: () => void): void;
    /**
     * Closes it from this side; the close listener is told at once, not when the server answers.
     * @param {number} code
     * @param {string} reason
     */
    close(code: number, reason: string): void;
    #private;
}
/**
 * What this library needs of a WebSocket: the browser's, `ws`'s and undici's all fit (as
 * methods, whose parameters TypeScript compares loosely enough for `ws`'s typed events).
 */
export type WebSocketLike = {
    readyState: number;
    send(data: string): void;
    close(code?: number, reason?: string): void;
    addEventListener(type: string, listener: (event: any) => void): void;
};
/**
 * A WebSocket class: called as `new WebSocket(url)`, or `new WebSocket(url, { headers })`
 * when there are headers to send (a key, a cookie).
 */
export type WebSocketClass = new (...args: any[]) => WebSocketLike;
export type SocketListeners = {
    open: () => void;
    frame: (frame: {
        type: string;
        [field: string]: any;
    }) => void;
    close: (close: {
        code: number;
        reason: string;
        refusedStatus?: number;
    }) => void;
};
