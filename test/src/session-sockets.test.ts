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

t.test("programs' sockets close by user: a revoke closes that user's with 4401; the check closes those no longer admitted", async (t) => {
  const sockets = new SessionSockets()
  const [bot1, bot2, other, gone, session] = [socket(), socket(), socket(), socket(), socket()]
  sockets.addProgram(1, bot1)
  sockets.addProgram(1, bot2)
  sockets.addProgram(2, other)
  sockets.addProgram(3, gone)
  sockets.deleteProgram(3, gone)
  sockets.add('session-a', session)
  sockets.closePrograms([1, 3])
  t.same(bot1.closes, [[CloseCode.loggedOut, 'revoked']])
  t.same(bot2.closes, [[CloseCode.loggedOut, 'revoked']])
  t.same(other.closes, [], "another user's program stays")
  t.same(gone.closes, [], 'a deleted socket is not closed')
  t.same(session.closes, [], "a session's socket is not a program's")

  let asked: number[] = []
  await sockets.closeRevoked(async (ids) => { asked = ids; return new Set() })
  t.same(asked.sort(), [1, 2], 'asks about the users of open program sockets only')
  t.same(other.closes, [[CloseCode.loggedOut, 'revoked']])
  await t.rejects(sockets.closeRevoked(async () => { throw new Error('database away') }), /database away/)
})
