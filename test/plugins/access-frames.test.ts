import t from 'tap'
import { Kind, type TObject, type TSchema } from '@sinclair/typebox'
import { buildTestApp, register, uniqueName } from '../helpers/app.js'
import { connect } from '../helpers/chat.js'
import { makePrivateTopic } from '../helpers/private-topics.js'
import { ClientFrame, parseClientFrame } from '../../src/protocol.js'

// Every client frame that names a topic is refused to a non-member of a private topic. The
// frames come from the protocol's own schema: a frame type added there without the access
// check fails here.

/** A valid value of a field, from its schema; throws for a kind this test does not know yet (teach it). */
function sample (frameType: string, field: string, schema: TSchema, topic: string): unknown {
  if (field === 'topic') return topic
  if ('const' in schema) return schema.const
  switch (schema[Kind]) {
    case 'String': return schema.format === 'ref' ? `${frameType}-ref` : 'hello'
    case 'Integer':
    case 'Number': return typeof schema.minimum === 'number' ? schema.minimum : 1
    case 'Boolean': return true
    // Any JSON value (a publish's `data`).
    case 'Unknown': return { sample: [1, 'two'] }
  }
  throw new Error(`field ${field} of the ${frameType} frame is of a kind this test cannot fill: teach sample() about it`)
}

/** Each frame type naming a topic, once with its required fields only and once with every field. */
function framesNaming (topic: string): Array<{ type: string, frame: Record<string, unknown> }> {
  const frames = []
  for (const schema of ClientFrame.anyOf as TObject[]) {
    if (!('topic' in schema.properties)) continue
    const type = String(schema.properties.type?.const)
    const required = new Set(schema.required ?? [])
    const minimal: Record<string, unknown> = {}
    const full: Record<string, unknown> = {}
    for (const [field, fieldSchema] of Object.entries(schema.properties)) {
      const value = sample(type, field, fieldSchema, topic)
      full[field] = value
      if (required.has(field)) minimal[field] = value
    }
    // A rule across fields (a publish needs text or data) may ask for more than the
    // schema requires: add optional fields, in order, until the frame is valid.
    for (const field of Object.keys(full)) {
      if (parseClientFrame(JSON.stringify(minimal), 1000).type !== 'error') break
      minimal[field] = full[field]
    }
    frames.push({ type, frame: minimal })
    if (Object.keys(full).length > Object.keys(minimal).length) frames.push({ type, frame: full })
  }
  return frames
}

t.test('every client frame that names a topic is refused to a non-member of a private topic', async (t) => {
  const app = await buildTestApp(t)
  const owner = await register(app, uniqueName('owner'))
  const stranger = await register(app, uniqueName('stranger'))
  await makePrivateTopic(app, 'hidden', owner)

  const frames = framesNaming('hidden')
  const types = new Set(frames.map(({ type }) => type))
  t.ok(['subscribe', 'unsubscribe', 'publish'].every((type) => types.has(type)), `the schema's frame types are found: ${[...types].join(', ')}`)

  const client = await connect(app, stranger.cookie, { topic: 'outside' })
  await client.nextOf('subscribed')
  for (const { type, frame } of frames) {
    const data = JSON.stringify(frame)
    t.same(parseClientFrame(data, 1000), frame, `${data} is a valid frame: what refuses it is access`)
    client.send(data)
    const answer = await client.next()
    const expected = typeof frame.ref === 'string'
      ? { type: 'error', code: 'forbidden', topic: 'hidden', ref: frame.ref }
      : { type: 'error', code: 'forbidden', topic: 'hidden' }
    t.match(answer, expected, `${type}: ${data} is forbidden`)
  }
  const stored = await app.db.query<{ n: number }>("SELECT count(*)::int AS n FROM messages WHERE topic = 'hidden'")
  t.equal(stored[0]?.n, 0, 'nothing stored')
  t.same(client.queued, [], 'and nothing else was sent')
  client.close()
})
