import t from 'tap'
import { TopicFeed } from '../../client/src/topic-feed.js'
import type { Entry } from '../../client/src/index.js'

/**
 * One topic's catch-up state, without a server: which entries of each reply and of the live
 * feed are told, and what is asked next, across drops.
 */

const entry = (id: number): Entry => ({ type: 'message', topic: 't', id, author: 'a', text: String(id), at: '' })
const entries = (from: number, to: number): Entry[] => Array.from({ length: to - from + 1 }, (_, i) => entry(from + i))
const idsOf = (told: Entry[]): number[] => told.map((told) => told.id)

t.test('a first subscribe tells the most recent history, then the live feed after it', async (t) => {
  const feed = new TopicFeed('t')
  t.same(feed.ask(), { type: 'subscribe', topic: 't' }, 'nothing held: the most recent history')
  const reply = feed.subscribed({ history: entries(8, 10) })
  t.same(idsOf(reply.entries), [8, 9, 10])
  t.equal(reply.more, false)
  t.equal(feed.held, 10)
  t.ok(feed.caughtUp)
  t.ok(feed.live(entry(11)))
  t.notOk(feed.live(entry(11)), 'never twice')
  t.notOk(feed.live(entry(9)), 'never backwards')
  t.equal(feed.held, 11)
})

t.test('an empty topic is held from its start; a lastId, when the server gives one, is where it stands', async (t) => {
  const empty = new TopicFeed('t')
  empty.ask()
  empty.subscribed({ history: [] })
  t.equal(empty.held, 0)
  t.same(empty.ask(), { type: 'subscribe', topic: 't', since: 0 })

  const changed = new TopicFeed('t')
  changed.ask()
  changed.subscribed({ history: entries(1, 3), lastId: 5 })
  t.equal(changed.held, 5, 'changes after the last message are in the messages shown')
})

t.test('after a drop: since what is held, looping while truncated, and nothing live until caught up', async (t) => {
  const feed = new TopicFeed('t')
  feed.ask()
  feed.subscribed({ history: entries(1, 10) })
  feed.dropped()
  t.notOk(feed.caughtUp)
  t.notOk(feed.live(entry(11)), 'a dropped socket tells nothing')

  t.same(feed.ask(), { type: 'subscribe', topic: 't', since: 10 })
  t.notOk(feed.live(entry(31)), 'live before the reply: left to the catch-up')
  const first = feed.subscribed({ history: entries(11, 20), truncated: true })
  t.same(idsOf(first.entries), entries(11, 20).map((e) => e.id))
  t.equal(first.more, true, 'truncated: ask again')
  t.same(feed.ask(), { type: 'subscribe', topic: 't', since: 20 })
  const last = feed.subscribed({ history: entries(21, 31) })
  t.same(idsOf(last.entries), entries(21, 31).map((e) => e.id))
  t.equal(last.more, false)
  t.ok(feed.caughtUp)
  t.notOk(feed.live(entry(31)), 'the live copy of a message the reply held is not told again')
  t.ok(feed.live(entry(32)))
})

t.test('a drop in the middle of a catch-up resumes from where the last reply stopped', async (t) => {
  const feed = new TopicFeed('t')
  feed.ask()
  feed.subscribed({ history: entries(1, 5) })
  feed.dropped()
  feed.ask()
  feed.subscribed({ history: entries(6, 15), truncated: true })
  feed.ask()
  feed.dropped()
  t.same(feed.ask(), { type: 'subscribe', topic: 't', since: 15 })
})

t.test('a new socket\'s first reply (the URL\'s topic, the most recent history) over what is held: caught up with since', async (t) => {
  const feed = new TopicFeed('t')
  feed.ask()
  feed.subscribed({ history: entries(1, 5) })
  feed.dropped()
  feed.askedOnOpen()
  const recent = feed.subscribed({ history: entries(40, 45) })
  t.same(recent.entries, [], 'a gap from 5 to 40: nothing of it is told')
  t.equal(recent.more, true)
  t.same(feed.ask(), { type: 'subscribe', topic: 't', since: 5 })
  t.notOk(feed.live(entry(46)), 'nothing live until the gap is filled')
  t.same(idsOf(feed.subscribed({ history: entries(6, 46) }).entries), entries(6, 46).map((e) => e.id))
  t.ok(feed.caughtUp)
})

t.test('updates are entries like messages; a reply that overlaps what is held tells only what is new', async (t) => {
  const feed = new TopicFeed('t', 3)
  feed.ask()
  const update: Entry = { type: 'update', topic: 't', id: 5, target: 2, kind: 'edit', author: 'a', at: '', text: 'edited' }
  const reply = feed.subscribed({ history: [entry(2), entry(3), entry(4), update] })
  t.same(idsOf(reply.entries), [4, 5])
  t.equal(reply.entries[1]?.type, 'update')
})

t.test('a restart asks afresh and ignores what was asked before it', async (t) => {
  const feed = new TopicFeed('t')
  feed.ask()
  feed.subscribed({ history: entries(1, 50) })
  feed.ask()
  feed.restart(10)
  t.same(feed.ask(), { type: 'subscribe', topic: 't', since: 10 }, 'from the id given, told again')
  t.same(feed.subscribed({ history: entries(51, 52) }), { entries: [], more: false }, 'the answer to the subscribe before the restart')
  t.same(idsOf(feed.subscribed({ history: entries(11, 52) }).entries), entries(11, 52).map((e) => e.id))
  t.ok(feed.caughtUp)

  feed.restart('recent')
  t.same(feed.ask(), { type: 'subscribe', topic: 't' }, 'recent: the most recent history')
  t.same(idsOf(feed.subscribed({ history: entries(45, 52) }).entries), entries(45, 52).map((e) => e.id))
})

t.test('a refused subscribe is no longer waited for; one asked before a restart is not asked again', async (t) => {
  const feed = new TopicFeed('t')
  feed.ask()
  t.equal(feed.refused(), true)
  t.same(feed.asks, [])
  feed.ask()
  feed.restart(0)
  t.equal(feed.refused(), false)
})

t.test('a topic given up tells nothing, even from replies on their way', async (t) => {
  const feed = new TopicFeed('t')
  feed.ask()
  feed.wanted = false
  t.same(feed.subscribed({ history: entries(1, 3) }), { entries: [], more: false })
  t.equal(feed.held, undefined, 'nothing held: nothing was told')
  t.notOk(feed.live(entry(4)))
})
