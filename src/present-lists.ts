/**
 * How long a topic's present list, once read, answers from memory; joined and left keep it
 * current meanwhile. The bound covers an announcement lost while the LISTEN connection was down.
 */
export const presentListMaxAgeMs = 5000

export interface PresentListsOptions {
  /** The users in a topic now, from the database, in any order. */
  read: (topic: string) => Promise<string[]>
  /** Whether joined and left of every instance are heard now (the topic bus's LISTEN is up). */
  hearsEveryone: () => boolean
  now?: () => number
}

/**
 * Each topic's present list (the users there, sorted), read from the database once, then
 * answered from memory for up to presentListMaxAgeMs and kept current by every joined and
 * left. Concurrent reads of one topic share one query.
 */
export class PresentLists {
  /** Each topic's list as last read, sorted; never changed in place (callers keep it). */
  private readonly lists = new Map<string, { names: string[], readAtMs: number }>()
  /** The read in flight per topic, shared until joined or left makes it out of date. */
  private readonly reads = new Map<string, { names: Promise<string[]>, outdated: boolean }>()
  private readonly read: (topic: string) => Promise<string[]>
  private readonly hearsEveryone: () => boolean
  private readonly now: () => number
  private prunedAtMs = 0

  constructor (options: PresentListsOptions) {
    this.read = options.read
    this.hearsEveryone = options.hearsEveryone
    this.now = options.now ?? Date.now
  }

  /** The users in `topic` now, on any instance, each once, sorted by name. */
  async of (topic: string): Promise<string[]> {
    if (!this.hearsEveryone()) {
      // joined and left from other instances are not heard meanwhile: nothing kept is current.
      this.lists.clear()
      return await this.readSorted(topic)
    }
    this.prune()
    const kept = this.lists.get(topic)
    if (kept !== undefined && this.now() - kept.readAtMs < presentListMaxAgeMs) return kept.names
    let read = this.reads.get(topic)
    if (read === undefined || read.outdated) {
      const entry = { names: this.readSorted(topic), outdated: false }
      this.reads.set(topic, entry)
      read = entry
      const done = (): void => { if (this.reads.get(topic) === entry) this.reads.delete(topic) }
      entry.names.then((names) => {
        done()
        if (entry.outdated) this.lists.delete(topic)
        else this.lists.set(topic, { names, readAtMs: this.now() })
      }, done)
    }
    return await read.names
  }

  /** A joined or left, from here or another instance. */
  change (topic: string, user: string, joined: boolean): void {
    const read = this.reads.get(topic)
    if (read !== undefined) read.outdated = true
    const list = this.lists.get(topic)
    if (list === undefined || list.names.includes(user) === joined) return
    list.names = joined ? [...list.names, user].sort() : list.names.filter((name) => name !== user)
  }

  /** Forgets the lists past their age (memory: topics nobody asks about again), now and then. */
  private prune (): void {
    const now = this.now()
    if (now - this.prunedAtMs < presentListMaxAgeMs) return
    this.prunedAtMs = now
    for (const [topic, list] of this.lists) if (now - list.readAtMs >= presentListMaxAgeMs) this.lists.delete(topic)
  }

  private async readSorted (topic: string): Promise<string[]> {
    return (await this.read(topic)).sort()
  }
}
