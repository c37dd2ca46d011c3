import { createHash } from 'node:crypto'
import { CloseCode } from './protocol.js'

/** A socket opened by an HTTP session: closed when the session ends. */
export interface SessionSocket {
  close(code: number, reason: string): void
}

/** A session id as it may travel between instances: not the secret itself. */
export function sessionKey (sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('base64url')
}

/**
 * The open sockets of this instance by the HTTP session that opened them, so that a
 * session that ends, by any path, takes its sockets with it (closed with 4401); and the
 * sockets of programs (opened with a key or a token, no session) by their user, so that a
 * revoked key or a disabled user takes those.
 */
export class SessionSockets {
  /** By session key (the session id hashed, as it travels between instances). */
  private readonly bySession = new Map<string, { sessionId: string, sockets: Set<SessionSocket> }>()
  /** Programs' sockets by user id. */
  private readonly byProgram = new Map<number, Set<SessionSocket>>()

  /** A socket of the session opened. */
  add (sessionId: string, socket: SessionSocket): void {
    const key = sessionKey(sessionId)
    let ofSession = this.bySession.get(key)
    if (ofSession === undefined) this.bySession.set(key, ofSession = { sessionId, sockets: new Set() })
    ofSession.sockets.add(socket)
  }

  /** A socket of the session is gone. */
  delete (sessionId: string, socket: SessionSocket): void {
    const key = sessionKey(sessionId)
    const ofSession = this.bySession.get(key)
    ofSession?.sockets.delete(socket)
    if (ofSession?.sockets.size === 0) this.bySession.delete(key)
  }

  /** Closes the sockets of the session with this key: it ended. */
  closeSession (key: string): void {
    for (const socket of this.bySession.get(key)?.sockets ?? []) socket.close(CloseCode.loggedOut, 'logged out')
  }

  /**
   * Closes the sockets of every session that `stillValid` does not return (it gets the
   * session ids of the open sockets). Rejects, closing nothing, when `stillValid` does.
   */
  async closeEnded (stillValid: (sessionIds: string[]) => Promise<Set<string>>): Promise<void> {
    const open = [...this.bySession]
    if (open.length === 0) return
    const valid = await stillValid(open.map(([, { sessionId }]) => sessionId))
    for (const [key, { sessionId }] of open) if (!valid.has(sessionId)) this.closeSession(key)
  }

  /** A program's socket opened, for the user its key or token admitted. */
  addProgram (userId: number, socket: SessionSocket): void {
    let ofUser = this.byProgram.get(userId)
    if (ofUser === undefined) this.byProgram.set(userId, ofUser = new Set())
    ofUser.add(socket)
  }

  /** A program's socket is gone. */
  deleteProgram (userId: number, socket: SessionSocket): void {
    const ofUser = this.byProgram.get(userId)
    ofUser?.delete(socket)
    if (ofUser?.size === 0) this.byProgram.delete(userId)
  }

  /** Closes the program sockets of these users: a key revoked, a user or a bot's owner disabled. */
  closePrograms (userIds: readonly number[]): void {
    for (const userId of userIds) {
      for (const socket of this.byProgram.get(userId) ?? []) socket.close(CloseCode.loggedOut, 'revoked')
    }
  }

  /**
   * Closes the program sockets of every user that `stillAdmitted` does not return (it gets
   * the users of the open program sockets). Rejects, closing nothing, when it does.
   */
  async closeRevoked (stillAdmitted: (userIds: number[]) => Promise<Set<number>>): Promise<void> {
    const open = [...this.byProgram.keys()]
    if (open.length === 0) return
    const admitted = await stillAdmitted(open)
    this.closePrograms(open.filter((userId) => !admitted.has(userId)))
  }
}
