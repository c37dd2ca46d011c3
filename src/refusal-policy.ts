/**
 * When a client told to wait (`rate_limited`, `retryAfterMs`) is closed with 1008: only when
 * it shows it keeps sending without pausing. Pausing once for the hint of the first refusal
 * of a run, then sending the whole window again, is polite (docs/protocol.md, "Rate limits");
 * so is waiting each refused frame's own hint.
 *
 * What the server can see: the frames it refuses, in the order the client sent them, and
 * when. A polite client with at most `inFlight` frames of a kind sent and not yet answered
 * reads a refusal at T (after the server sent it) and then sends nothing for its hint H.
 * The frames the server refuses in [T, T + H) were therefore sent before the client read
 * the refusal (fewer than `inFlight`), or belong to the window it sent after its previous
 * pause, which the server may still be working through (at most `inFlight` more). So a polite
 * client is never refused more than 2 × `inFlight` times of a kind within one pause; a client
 * that keeps sending is, as soon as it sends that many frames within one hint.
 *
 * A pause, here, starts at the first refusal after the last pause ended, and lasts the
 * smallest hint given since it started: the server cannot tell which refusal the client took
 * for the first of its run (an old frame refused late, with a later token promised, has a
 * longer hint than the one the client waits), and a shorter pause only ever counts fewer.
 */

/** What a refusal was for: each kind has its own bound of frames in flight. */
export type RefusedFrame = 'publish' | 'other'

export interface RefusalPolicyOptions {
  /** Frames of each kind a polite client may have sent and not yet had answered. */
  inFlight: Record<RefusedFrame, number>
  /** A client's timer may fire this much before the hint it was given (clock ticks). */
  toleranceMs: number
  now?: () => number
}

/** The client may go on (`told`: send it the refusal), or it showed it does not pause. */
export type RefusalVerdict = 'told' | 'not_pausing'

interface Pause {
  startedMs: number
  /** The smallest hint given since the pause started. */
  shortestHintMs: number
  refused: Record<RefusedFrame, number>
}

/** One policy for every connection of an endpoint, by key; a key's state is dropped with `forget`. */
export class RefusalPolicy<Key> {
  private readonly pauses = new Map<Key, Pause>()
  private readonly now: () => number

  constructor (private readonly options: RefusalPolicyOptions) {
    this.now = options.now ?? Date.now
  }

  /** A frame of `key` is refused, and the client told to wait `retryAfterMs`. */
  refuse (key: Key, frame: RefusedFrame, retryAfterMs: number): RefusalVerdict {
    const now = this.now()
    let pause = this.pauses.get(key)
    if (pause === undefined || now >= pause.startedMs + pause.shortestHintMs - this.options.toleranceMs) {
      pause = { startedMs: now, shortestHintMs: retryAfterMs, refused: { publish: 0, other: 0 } }
      this.pauses.set(key, pause)
    }
    pause.shortestHintMs = Math.min(pause.shortestHintMs, retryAfterMs)
    pause.refused[frame] += 1
    return pause.refused[frame] > 2 * this.options.inFlight[frame] ? 'not_pausing' : 'told'
  }

  /** The connection is gone. */
  forget (key: Key): void {
    this.pauses.delete(key)
  }
}
