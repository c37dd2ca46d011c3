import { test } from 'tap'
import { maxJsonDepth, nestsDeeperThan, parseClientFrame, type ErrorFrame } from '../../src/protocol.js'

const maxChars = 2000
const errorOf = (data: string): Pick<ErrorFrame, 'code' | 'ref'> | undefined => {
  const frame = parseClientFrame(data, maxChars)
  return frame.type === 'error' ? { code: frame.code, ref: frame.ref } : undefined
}

test('frames nested deeper than the limit are bad_json, and nothing throws on them', async (t) => {
  t.same(errorOf('['.repeat(30_000) + ']'.repeat(30_000)), { code: 'bad_json', ref: undefined })
  t.same(errorOf(`{"type":${'['.repeat(30_000)}${']'.repeat(30_000)},"ref":"r1"}`), { code: 'bad_json', ref: undefined })
  t.same(errorOf('{"a":'.repeat(maxJsonDepth) + '1' + '}'.repeat(maxJsonDepth)), { code: 'bad_request', ref: undefined }, 'exactly the limit is read (and lacks a type)')
  t.notOk(nestsDeeperThan(JSON.parse('{"text":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"["}'), 2), 'brackets inside strings do not count')
  t.ok(nestsDeeperThan({ a: [{ b: [] }] }, 3) && !nestsDeeperThan({ a: [{ b: [] }] }, 4), 'depth counts objects and arrays alike')
  t.same(errorOf(`{"type":${'['.repeat(20)}${']'.repeat(20)},"ref":"r1"}`), { code: 'unknown_type', ref: 'r1' })
})

test('values Postgres cannot store are bad_request, in any field, with the ref when it is usable', async (t) => {
  t.same(errorOf(JSON.stringify({ type: 'publish', topic: 'general', text: 'hi', ref: 'a\u0000b' })), { code: 'bad_request', ref: undefined })
  t.same(errorOf(JSON.stringify({ type: 'publish', topic: 'general', text: 'hi', ref: 'a\ud800' })), { code: 'bad_request', ref: undefined })
  t.same(errorOf(JSON.stringify({ type: 'publish', topic: 'general', text: 'a\u0000b', ref: 'r2' })), { code: 'bad_request', ref: 'r2' })
  t.same(errorOf(JSON.stringify({ type: 'publish', topic: 'general', text: '\udc00', ref: 'r3' })), { code: 'bad_request', ref: 'r3' })
  // Not bad_topic or unknown_type: whatever field it is in, it is the same refusal.
  t.same(errorOf(JSON.stringify({ type: 'publish', topic: 'ab\u0000', text: 'hi', ref: 'r4' })), { code: 'bad_request', ref: 'r4' })
  t.same(errorOf(JSON.stringify({ type: 'subscribe', topic: 'ab\ud800' })), { code: 'bad_request', ref: undefined })
  t.same(errorOf(JSON.stringify({ type: 'publish\u0000', topic: 'general', text: 'hi', ref: 'r5' })), { code: 'bad_request', ref: 'r5' })
  t.same(errorOf(JSON.stringify({ type: 'publish', topic: 'general', text: 'hi', ref: 'r6', note: '\ud800' })), { code: 'bad_request', ref: 'r6' }, 'a field the protocol does not know')
  t.same(errorOf(JSON.stringify({ type: 'publish', topic: 'general', text: 'hi', ref: 'r7', deep: [{ a: ['\u0000'] }] })), { code: 'bad_request', ref: 'r7' }, 'nested')
  t.same(errorOf(JSON.stringify({ type: 'publish', topic: 'general', text: 'hi', ref: 'r8', '\udc00': 1 })), { code: 'bad_request', ref: 'r8' }, 'a key')
})

test('a ref counts characters as code points, as the text does', async (t) => {
  const publish = (ref: string): string => JSON.stringify({ type: 'publish', topic: 'a', text: 'hi', ref })
  t.equal(parseClientFrame(publish('🌲'.repeat(64)), maxChars).type, 'publish', '64 emoji')
  t.same(errorOf(publish('🌲'.repeat(65))), { code: 'bad_request', ref: undefined }, '65 emoji')
  t.same(errorOf(publish('')), { code: 'bad_request', ref: undefined }, 'empty')
})

test('each field rule gives its code', async (t) => {
  t.same(errorOf('{"type":"subscribe"}'), { code: 'bad_request', ref: undefined })
  t.same(errorOf('{"type":"subscribe","topic":"Bad Topic"}'), { code: 'bad_topic', ref: undefined })
  t.same(errorOf('{"type":"subscribe","topic":"a","since":-1}'), { code: 'bad_request', ref: undefined })
  t.same(errorOf('{"type":"subscribe","topic":"a","since":1.5}'), { code: 'bad_request', ref: undefined })
  t.same(errorOf('{"type":"publish","topic":"a","text":"hi"}'), { code: 'bad_request', ref: undefined })
  t.same(errorOf('{"type":"publish","topic":"A","text":"hi","ref":"r"}'), { code: 'bad_topic', ref: 'r' })
  t.same(errorOf('{"type":"publish","topic":"a","text":5,"ref":"r"}'), { code: 'bad_request', ref: 'r' })
  t.same(errorOf('{"type":"publish","topic":"a","text":"  ","ref":"r"}'), { code: 'too_long', ref: 'r' })
  t.same(errorOf(JSON.stringify({ type: 'publish', topic: 'a', text: 'x'.repeat(maxChars + 1), ref: 'r' })), { code: 'too_long', ref: 'r' })
  t.same(errorOf('{"type":"nope","ref":"r"}'), { code: 'unknown_type', ref: 'r' })
  t.same(errorOf('[1]'), { code: 'bad_request', ref: undefined })
  t.same(errorOf('{"type":'), { code: 'bad_json', ref: undefined })
  t.same(parseClientFrame('{"type":"publish","topic":"a","text":"hi","ref":"r","extra":1}', maxChars),
    { type: 'publish', topic: 'a', text: 'hi', ref: 'r', extra: 1 }, 'unknown fields are let through')
})
