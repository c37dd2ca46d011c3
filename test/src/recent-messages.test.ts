import t from 'tap'
import type { History } from '../../src/message-store.js'
import { maxSinceBytes, type MessageFrame } from '../../src/protocol.js'
import { keptBytes, RecentMessages } from '../../src/recent-messages.js'

const at = '2025-01-02T03:04:05.678Z'
const frame = (id: number, text = `m${id}`): MessageFrame => ({ type: 'message', topic: 'room', id, author: 'ann', text, at })
const frames = (from: number, to: number, text?: string): MessageFrame[] => Array.from({ length: to - from + 1 }, (_, i) => frame(from + i, text))
/** A history read of the most recent messages, as the table answers it. */
const read = (messages: MessageFrame[], lastId = messages.at(-1)?.id ?? 0): History => ({ messages, lastId, truncated: false })
const ids = (history: History | undefined): number[] | undefined => history?.messages.map((message) => message.id)
const sum = (messages: MessageFrame[]): number => messages.reduce((total, message) => total + keptBytes(message), 0)

t.test('a topic is kept from a read that holds all of its latest messages', async (t) => {
  const recent = new RecentMessages({ perTopic: 3 })
  t.same(recent.keep(read(frames(1, 5)), undefined)?.frames.map((m) => m.id), [3, 4, 5], 'the latest perTopic of a longer read')
  t.same(recent.keep(read(frames(1, 2)), undefined)?.frames.map((m) => m.id), [1, 2], 'all of a younger topic')
  t.same(recent.keep(read([]), undefined)?.frames, [], 'an empty topic: nothing yet, but known complete')
  t.equal(recent.keep(read(frames(4, 5)), undefined), undefined, 'not a read too short to hold the latest perTopic')
  t.equal(recent.keep(read(frames(1, 5), 6), undefined), undefined, 'not a read that ends before the topic does')
  t.equal(new RecentMessages({ perTopic: 0 }).keep(read(frames(1, 5)), undefined), undefined, 'nothing with perTopic 0')
})

t.test('a kept topic holds its latest perTopic messages as they arrive, and counts what they take', async (t) => {
  const recent = new RecentMessages({ perTopic: 3 })
  const kept = recent.keep(read(frames(1, 2)), undefined)
  if (kept === undefined) throw new Error('not kept')
  t.equal(recent.bytes, sum(frames(1, 2)))
  t.ok(recent.add(kept, frame(3, 'a longer one')))
  t.ok(recent.add(kept, frame(4)))
  t.same(kept.frames.map((m) => m.id), [2, 3, 4], 'the oldest let go')
  t.equal(kept.bytes, sum(kept.frames))
  t.equal(recent.bytes, sum(kept.frames), 'in the total too')
  recent.forget(kept)
  t.equal(recent.bytes, 0, 'forgotten: nothing counted')
})

t.test('the total budget: a topic past it is not kept, and one that grows past it is forgotten', async (t) => {
  const one = sum(frames(1, 2))
  const recent = new RecentMessages({ perTopic: 2, maxBytes: 2 * one })
  const a = recent.keep(read(frames(1, 2)), undefined)
  const b = recent.keep(read(frames(1, 2)), undefined)
  t.ok(a !== undefined && b !== undefined, 'two fit')
  t.equal(recent.keep(read(frames(1, 2)), undefined), undefined, 'a third does not')
  if (a === undefined) return
  t.notOk(recent.add(a, frame(3, 'longer than what it replaces')), 'a message that takes the total past it forgets its topic')
  t.equal(recent.bytes, one, 'only the other is counted')
  t.ok(recent.keep(read(frames(1, 2)), undefined), 'and there is room again')
})

t.test('a user\'s share: topics kept for one user stay within it, others\' are not affected', async (t) => {
  const one = sum(frames(1, 2))
  const recent = new RecentMessages({ perTopic: 2, maxBytesPerUser: 2 * one })
  const first = recent.keep(read(frames(1, 2)), 7)
  t.ok(first, 'one topic for user 7')
  t.ok(recent.keep(read(frames(1, 2)), 7), 'two')
  t.equal(recent.bytesOf(7), 2 * one)
  t.equal(recent.keep(read(frames(1, 2)), 7), undefined, 'a third is past the share: not kept')
  t.ok(recent.keep(read(frames(1, 2)), 8), 'another user has a share of its own')
  t.ok(recent.keep(read(frames(1, 2)), undefined), 'and a subscribe that names no user has only the total')
  t.equal(recent.bytes, 4 * one)
  if (first === undefined) return
  t.notOk(recent.add(first, frame(3, 'longer than what it replaces')), 'a message that takes the share past it forgets its topic')
  t.equal(recent.bytesOf(7), one)
  t.ok(recent.keep(read(frames(1, 2)), 7), 'which makes room in the share again')
})

t.test('a share is let go with the last topic kept for it, an empty one included', async (t) => {
  const recent = new RecentMessages({ perTopic: 2, maxBytesPerUser: sum(frames(1, 2)) })
  const empty = recent.keep(read([]), 7)
  const full = recent.keep(read(frames(1, 2)), 7)
  if (empty === undefined || full === undefined) throw new Error('not kept')
  recent.forget(full)
  t.equal(recent.bytesOf(7), 0)
  // The empty topic still counts against the share it had: what it gets now is the user's.
  t.ok(recent.add(empty, frame(1)))
  t.equal(recent.keep(read(frames(1, 2)), 7), undefined, 'the messages the empty topic got count for the user')
  recent.forget(empty)
  t.equal(recent.bytesOf(7), 0)
  t.ok(recent.keep(read(frames(1, 2)), 7))
})

t.test('a history comes from the kept messages only when they hold all of it', async (t) => {
  const recent = new RecentMessages({ perTopic: 3 })
  const old = recent.keep(read(frames(1, 5)), undefined)
  const young = recent.keep(read(frames(1, 2)), undefined)
  if (old === undefined || young === undefined) throw new Error('not kept')
  t.same(ids(recent.historyFrom(old, 5, { historyLimit: 3 })), [3, 4, 5], 'the most recent')
  t.same(ids(recent.historyFrom(old, 5, { historyLimit: 2 })), [4, 5], 'fewer')
  t.equal(recent.historyFrom(old, 5, { historyLimit: 4 }), undefined, 'more than are kept: read')
  t.same(ids(recent.historyFrom(young, 2, { historyLimit: 30 })), [1, 2], 'more than a younger topic has: all of them')
  t.same(ids(recent.historyFrom(old, 5, { historyLimit: 0, since: 3 })), [4, 5], 'a catch-up they cover')
  t.same(ids(recent.historyFrom(old, 5, { historyLimit: 0, since: 2 })), [3, 4, 5], 'from just before the oldest kept')
  t.same(ids(recent.historyFrom(old, 5, { historyLimit: 0, since: 5 })), [], 'nothing to catch up')
  t.equal(recent.historyFrom(old, 5, { historyLimit: 0, since: 1 }), undefined, 'from before them: read')
  t.equal(recent.historyFrom(old, 5, { historyLimit: 0, since: 6 }), undefined, 'from past the end: read (the table answers that)')
  t.same(ids(recent.historyFrom(young, 2, { historyLimit: 0, since: 0 })), [1, 2], 'from the start of a younger topic')
})

t.test('a catch-up from the kept messages is cut at the reply\'s bytes and says so', async (t) => {
  const recent = new RecentMessages({ perTopic: 5 })
  const kept = recent.keep(read(frames(1, 5, 'x'.repeat(100_000))), undefined)
  if (kept === undefined) throw new Error('not kept')
  const history = recent.historyFrom(kept, 5, { historyLimit: 0, since: 0 })
  t.ok(3 * 100_000 > maxSinceBytes, 'three of them cross the reply\'s bytes')
  t.same(ids(history), [1, 2, 3], 'the reply holds the one that crosses it, and stops there')
  t.equal(history?.truncated, true)
})
