import t from 'tap'
import {
  commitTimeField, decodeNotification, encodeEvent, encodeMessages, maxNotifyPayloadBytes, senderPrefix,
  type NotifiedMessage
} from '../../src/bus-format.js'

const at = new Date('2025-01-02T03:04:05.678Z')

/** What Postgres makes of a head and a tail: the statement splices in the first id and the commit time. */
function spliced ({ head, tail }: { head: string, tail: string }, firstId: number | string, commitMs = '1735787045678.123'): string {
  return `${head}${firstId}${commitTimeField}${commitMs}${tail}`
}

/** The bytes of a full payload (before the splice) with one message of this text. */
function payloadBytes (text: string): number {
  const { head, tail } = encodeMessages('abcd1234', 'room', [{ author: 'ann', text, at }])
  return Buffer.byteLength(head) + Buffer.byteLength(tail)
}

t.test('a batch of messages reads back as it was sent, with its first id and commit time', async (t) => {
  const messages: NotifiedMessage[] = [
    { author: 'ann', text: 'hello "there"', at },
    { author: 'bob', text: 'ünïcödé ✓ \n', at: new Date(at.getTime() + 1) }
  ]
  const note = decodeNotification(spliced(encodeMessages('abcd1234', 'room', messages), 41))
  t.same(note, {
    kind: 'messages',
    instanceId: 'abcd1234',
    topic: 'room',
    firstId: 41,
    messages: messages.map(({ author, text, at }) => ({ author, text, at: at.toISOString() })),
    committedAtMs: 1735787045678.123
  })
})

t.test('a payload of an older version, without the commit time, still reads', async (t) => {
  const { head, tail } = encodeMessages('abcd1234', 'room', [{ author: 'ann', text: 'hi', at }])
  const note = decodeNotification(`${head}7${tail}`)
  t.equal(note?.kind, 'messages')
  t.equal(note?.kind === 'messages' ? note.committedAtMs : 'none', undefined)
})

t.test('messages fit in the payload up to maxNotifyPayloadBytes exactly, counted in bytes; one byte more sends a hint', async (t) => {
  const bare = payloadBytes('')
  const fits = 'x'.repeat(maxNotifyPayloadBytes - bare)
  t.equal(payloadBytes(fits), maxNotifyPayloadBytes, 'the largest that fits')
  const atLimit = encodeMessages('abcd1234', 'room', [{ author: 'ann', text: fits, at }])
  t.match(atLimit.tail, /^,"m":/, 'carries its message')
  // With the largest first id (20 characters) and commit time spliced in, it is still under Postgres's 8000 bytes.
  t.ok(Buffer.byteLength(spliced(atLimit, '-9223372036854775808', '99999999999999.999')) < 8000, 'under 8000 bytes once spliced')

  const over = encodeMessages('abcd1234', 'room', [{ author: 'ann', text: `${fits}x`, at }, { author: 'bob', text: 'more', at }])
  t.equal(over.tail, ',"n":2}', 'one byte more: only how many')
  t.same(decodeNotification(spliced(over, 10)), { kind: 'hint', instanceId: 'abcd1234', topic: 'room', lastId: 11 }, 'which reads back as where to read them')

  // The same number of characters, one of them two bytes long.
  const wide = encodeMessages('abcd1234', 'room', [{ author: 'ann', text: `é${fits.slice(1)}`, at }])
  t.equal(wide.tail, ',"n":1}', 'bytes count, not characters')
})

t.test('an event reads back as it was sent', async (t) => {
  t.same(decodeNotification(encodeEvent('abcd1234', { kind: 'presence', topic: 'room', user: 'ann', joined: true })),
    { kind: 'event', instanceId: 'abcd1234', event: { kind: 'presence', topic: 'room', user: 'ann', joined: true } })
  t.same(decodeNotification(encodeEvent('abcd1234', { kind: 'logout', sessionKey: 'k' })),
    { kind: 'event', instanceId: 'abcd1234', event: { kind: 'logout', sessionKey: 'k' } })
})

t.test('every payload of an instance starts with its sender prefix, and no other instance\'s does', async (t) => {
  const prefix = senderPrefix('abcd1234')
  t.ok(encodeEvent('abcd1234', { kind: 'logout', sessionKey: 'k' }).startsWith(prefix))
  t.ok(spliced(encodeMessages('abcd1234', 'room', [{ author: 'ann', text: 'hi', at }]), 1).startsWith(prefix))
  t.notOk(encodeEvent('abcd12345', { kind: 'logout', sessionKey: 'k' }).startsWith(prefix), 'an id that extends this one is another')
})

t.test('a payload that is not ours reads as undefined, never throws', async (t) => {
  const bad = [
    '',
    'not json',
    '{"i":"abcd1234",',
    'null',
    '42',
    '"a string"',
    '[]',
    '{}',
    '{"i":7,"e":{"kind":"logout","sessionKey":"k"}}',
    '{"i":"abcd1234"}',
    '{"i":"abcd1234","t":"room"}',
    '{"i":"abcd1234","t":"room","f":"1","m":[]}',
    '{"i":"abcd1234","t":5,"f":1,"m":[]}',
    '{"i":"abcd1234","t":"room","f":1}',
    '{"i":"abcd1234","t":"room","f":1,"n":"2"}',
    '{"i":"abcd1234","t":"room","f":1,"m":[5]}',
    '{"i":"abcd1234","t":"room","f":1,"m":[["ann","hi"]]}',
    '{"i":"abcd1234","t":"room","f":1,"m":[["ann","hi","2025-01-02T03:04:05.678Z"],["bob",null,"x"]]}',
    '{"i":"abcd1234","e":null}',
    '{"i":"abcd1234","e":"logout"}'
  ]
  for (const payload of bad) t.equal(decodeNotification(payload), undefined, JSON.stringify(payload))
})

t.test('data and bot travel as a 4th and 5th element, and only when a message has them', async (t) => {
  const data = { n: [1, 2.5, -3], nested: { s: 'ünï ✓', ok: true, none: null } }
  const messages: NotifiedMessage[] = [
    { author: 'ann', text: '', data, at },
    { author: 'bot1', text: 'hi', bot: true, at },
    { author: 'bot2', text: 'both', data: 'a string', bot: true, at },
    { author: 'bob', text: 'plain', at }
  ]
  const encoded = encodeMessages('abcd1234', 'room', messages)
  t.match(encoded.tail, '["ann","",')
  t.match(encoded.tail, `["bob","plain","${at.toISOString()}"]`, 'a plain message is still a triple')
  t.match(encoded.tail, `["bot1","hi","${at.toISOString()}",null,1]`)
  const note = decodeNotification(spliced(encoded, 5))
  t.same(note?.kind === 'messages' ? note.messages : undefined, [
    { author: 'ann', text: '', at: at.toISOString(), data },
    { author: 'bot1', text: 'hi', at: at.toISOString(), bot: true },
    { author: 'bot2', text: 'both', at: at.toISOString(), data: 'a string', bot: true },
    { author: 'bob', text: 'plain', at: at.toISOString() }
  ])
  const plain = note?.kind === 'messages' ? note.messages[3] : undefined
  t.notOk(plain !== undefined && 'data' in plain, 'no data key on a message without')
  t.notOk(plain !== undefined && 'bot' in plain, 'no bot key on a message of a person')
})

t.test('older 3-element payloads still decode; entries of another length do not', async (t) => {
  const old = `{"i":"old","t":"room","f":3,"m":[["ann","hi","${at.toISOString()}"]]}`
  t.same(decodeNotification(old), { kind: 'messages', instanceId: 'old', topic: 'room', firstId: 3, messages: [{ author: 'ann', text: 'hi', at: at.toISOString() }], committedAtMs: undefined })
  t.equal(decodeNotification(`{"i":"x","t":"room","f":3,"m":[["ann","hi","${at.toISOString()}",1,1,1]]}`), undefined)
  t.equal(decodeNotification('{"i":"x","t":"room","f":3,"m":[["ann","hi"]]}'), undefined)
})

t.test('data that does not fit in a payload falls back to the hint', async (t) => {
  const data = { big: 'x'.repeat(maxNotifyPayloadBytes) }
  const note = decodeNotification(spliced(encodeMessages('abcd1234', 'room', [{ author: 'ann', text: '', data, at }]), 9))
  t.same(note, { kind: 'hint', instanceId: 'abcd1234', topic: 'room', lastId: 9 })
})

t.test('the hint canopy_publish sends (json_build_object spacing) decodes', async (t) => {
  t.same(decodeNotification('{"i" : "sql", "t" : "room", "f" : 12, "n" : 1}'), { kind: 'hint', instanceId: 'sql', topic: 'room', lastId: 12 })
})
