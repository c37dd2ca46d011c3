/**
 * The URL of /chat on the server at `baseUrl` (http(s) or ws(s)), with its query.
 * @param {string} baseUrl
 * @param {Record<string, string>} query
 */
export function chatUrl(baseUrl: string, query: Record<string, string>): string;
/**
 * What to open the next socket with: the query (ticket or token) and the headers.
 * Throws Unauthorized when the server says the credentials are no good.
 * @param {Auth} auth
 * @param {{ url: string, fetch: Fetch }} server
 * @returns {Promise<{ query: Record<string, string>, headers: Record<string, string> | undefined, token?: string }>}
 */
export function credentials(auth: Auth, server: {
    url: string;
    fetch: Fetch;
}): Promise<{
    query: Record<string, string>;
    headers: Record<string, string> | undefined;
    token?: string;
}>;
/**
 * Logs in with a name and password (POST /api/login) and returns a session for a program
 * to connect with: its cookie, kept in memory only.
 * @param {string} url the server's base URL
 * @param {{ username: string, password: string }} login
 * @param {{ fetch?: Fetch }} [options]
 * @returns {Promise<SessionAuth>}
 */
export function sessionLogin(url: string, { username, password }: {
    username: string;
    password: string;
}, { fetch }?: {
    fetch?: Fetch;
}): Promise<SessionAuth>;
/**
 * When a JWT expires (its `exp`), in ms since the epoch; undefined when it cannot be read.
 * The signature is the server's business: this only decides when to fetch a new one.
 * @param {string} token
 */
export function tokenExpiresAtMs(token: string): number | undefined;
/**
 * How a client proves who it is when it opens /chat, in the three ways docs/protocol.md
 * admits: a session (the page, or a program holding a session cookie), whose ticket comes
 * fresh from GET /api/me before each socket; a bot's key, sent as `Authorization: Bearer`
 * (which only a WebSocket implementation that takes headers can send, as `ws` does); or an
 * application's token (a JWT), sent as `?token=` and replaced in band before it expires.
 */
/**
 * @typedef {object} SessionAuth
 * @property {'session'} kind
 * @property {() => Promise<string>} [ticket] the session's wsTicket; by default GET /api/me with the session's cookie
 * @property {string} [cookie] the session's cookie, for a program (a browser sends its own)
 */
/**
 * @typedef {object} KeyAuth
 * @property {'key'} kind
 * @property {string} key a bot's key
 */
/**
 * @typedef {object} TokenAuth
 * @property {'token'} kind
 * @property {() => string | Promise<string>} token a valid token each time it is called: before each socket, and before the token in use expires
 */
/** @typedef {SessionAuth | KeyAuth | TokenAuth} Auth */
/** The subset of fetch this library uses: the global fetch of a browser or of Node 18+. */
/** @typedef {(url: string, init?: { method?: string, headers?: Record<string, string>, body?: string, credentials?: 'include' }) => Promise<FetchResponse>} Fetch */
/**
 * @typedef {object} FetchResponse
 * @property {number} status
 * @property {boolean} ok
 * @property {() => Promise<any>} json
 * @property {{ get(name: string): string | null, getSetCookie?(): string[] }} headers
 */
/** The server does not accept these credentials (any more): no point trying again with them. */
export class Unauthorized extends Error {
    /** @param {string} message */
    constructor(message: string);
}
/**
 * Replaces the token of an open socket before it expires, with `{"type":"auth","token"}`.
 * The server closes a socket whose token expired with 4401; a token that cannot be fetched
 * in time lets that happen.
 */
export class TokenRefresh {
    /**
     * @param {TokenAuth} auth
     * @param {(frame: { type: 'auth', token: string }) => void} send
     * @param {() => number} [now]
     */
    constructor(auth: TokenAuth, send: (frame: {
        type: "auth";
        token: string;
    }) => void, now?: () => number);
    auth: TokenAuth;
    send: (frame: {
        type: "auth";
        token: string;
    }) => void;
    now: () => number;
    /** The socket opened with `token` (or was sent it): replace it before it expires. @param {string} token */
    start(token: string): void;
    /** The socket is gone: nothing more is sent. */
    stop(): void;
    #private;
}
export type SessionAuth = {
    kind: "session";
    /**
     * the session's wsTicket; by default GET /api/me with the session's cookie
     */
    ticket?: (() => Promise<string>) | undefined;
    /**
     * the session's cookie, for a program (a browser sends its own)
     */
    cookie?: string | undefined;
};
export type KeyAuth = {
    kind: "key";
    /**
     * a bot's key
     */
    key: string;
};
export type TokenAuth = {
    kind: "token";
    /**
     * a valid token each time it is called: before each socket, and before the token in use expires
     */
    token: () => string | Promise<string>;
};
export type Auth = SessionAuth | KeyAuth | TokenAuth;
export type Fetch = (url: string, init?: {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    credentials?: "include";
}) => Promise<FetchResponse>;
export type FetchResponse = {
    status: number;
    ok: boolean;
    json: () => Promise<any>;
    headers: {
        get(name: string): string | null;
        getSetCookie?(): string[];
    };
};
