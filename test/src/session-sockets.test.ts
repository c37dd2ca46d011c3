import t from 'tap'
import { CloseCode } from '../../src/protocol.js'
import { sessionKey, SessionSockets, type SessionSocket } from '../../src/session-sockets.js'

function socket (): SessionSocket & { closes: Array<[number, string]> } {
  const closes: Array<[number, string]> = []
  return { closes, close (code, reason) { closes.push([code, reason]) } }
}

t.test('a session that ends closes its own sockets with 4401, and no other', async (t) => {
  const sockets = new SessionSockets()
  const [a1, a2, b] = [socket(), socket(), socket()]
  sockets.add('session-a', a1)
  sockets.add('session-a', a2)
  sockets.add('session-b', b)
  sockets.closeSession(sessionKey('session-a'))
  t.same(a1.closes, [[CloseCode.loggedOut, 'logged out']])
  t.same(a2.closes, [[CloseCode.loggedOut, 'logged out']])
  t.same(b.closes, [], 'another session\'s socket stays open')
  t.not(sessionKey('session-a'), 'session-a', 'the key that travels is not the session id itself')
})

t.test('a deleted socket is not closed; the check closes only the sessions no longer valid', async (t) => {
  const sockets = new SessionSockets()
  const [gone, ended, valid] = [socket(), socket(), socket()]
  sockets.add('s-gone', gone)
  sockets.delete('s-gone', gone)
  sockets.add('s-ended', ended)
  sockets.add('s-valid', valid)
  let asked: string[] = []
  await sockets.closeEnded(async (ids) => { asked = ids; return new Set(['s-valid']) })
  t.same(asked.sort(), ['s-ended', 's-valid'], 'asks about the sessions of open sockets only')
  t.same(ended.closes, [[CloseCode.loggedOut, 'logged out']])
  t.same(valid.closes, [])
  t.same(gone.closes, [])
  await t.rejects(sockets.closeEnded(async () => { throw new Error('database away') }), /database away/)
  t.same(valid.closes, [], 'a failed check closes nothing')
})
