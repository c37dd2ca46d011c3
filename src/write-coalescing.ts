import type { Writable } from 'node:stream'

/** A connection whose socket was corked this turn: told when the turn's frames have left. */
export interface TurnWriter {
  endTurn(): void
}

/**
 * Write coalescing: the frames a connection is sent in one turn of the event loop (the
 * messages of one commit, its acks) leave in one write. A loopback or network write is a
 * system call that costs more than encoding the frame; a batch of 30 messages to one
 * subscriber is one call instead of 30. The first frame of a turn corks the socket, and the
 * turn's end uncorks every socket it corked; only then is the send-buffer bound checked, on
 * what the kernel did not take. One coalescer per endpoint, shared by its connections.
 */
export class WriteCoalescer {
  private readonly corked: TurnWriter[] = []
  private turnEndScheduled = false
  /** Made once: scheduling the turn's end allocates no closure. */
  private readonly endTurn = (): void => {
    this.turnEndScheduled = false
    for (const writer of this.corked.splice(0)) writer.endTurn()
  }

  /** Corks the socket for the rest of this turn; false when it cannot be (no TCP socket of its own, or gone). */
  gather (tcp: Writable | undefined, writer: TurnWriter): boolean {
    if (tcp === undefined || tcp.destroyed) return false
    if (tcp.writableCorked > 0) return true
    tcp.cork()
    this.corked.push(writer)
    if (!this.turnEndScheduled) {
      this.turnEndScheduled = true
      process.nextTick(this.endTurn)
    }
    return true
  }
}
