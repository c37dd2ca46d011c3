import fp from 'fastify-plugin'
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { HttpError } from '../src/errors.js'
import { readPage } from '../src/messages.js'
import { checkText, isValidTopic, maxRefChars, type ErrorCode } from '../src/protocol.js'
import type { User } from '../src/users.js'

const maxPageSize = 100

const TopicParams = Type.Object({ topic: Type.String() })
const PageQuery = Type.Object({
  before: Type.Optional(Type.Integer({ minimum: 1 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: maxPageSize }))
})
const PublishBody = Type.Object({
  text: Type.String(),
  ref: Type.Optional(Type.String({ minLength: 1, maxLength: maxRefChars }))
})

const statusByCode: Record<ErrorCode, number> = {
  bad_json: 400,
  bad_request: 400,
  unknown_type: 400,
  bad_topic: 400,
  too_long: 400,
  rate_limited: 429,
  unavailable: 503
}

function checkTopic (topic: string): void {
  if (!isValidTopic(topic)) throw new HttpError(400, 'bad_topic', 'A topic name matches ^[a-z0-9][a-z0-9_.-]{0,63}$')
}

/** History pages and publishing over HTTP, on the same publish path as the WebSocket. */
export default fp(async function topicsApi (fastify) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()

  app.get('/api/topics/:topic/messages', {
    schema: { params: TopicParams, querystring: PageQuery },
    preHandler: fastify.requireUser
  }, async (request) => {
    checkTopic(request.params.topic)
    const { before, limit = fastify.config.historyLimit || 30 } = request.query
    return { messages: await readPage(fastify.db, request.params.topic, before, limit) }
  })

  app.post('/api/topics/:topic/messages', {
    schema: { params: TopicParams, body: PublishBody },
    preHandler: fastify.requireUser
  }, async (request, reply) => {
    const { topic } = request.params
    checkTopic(topic)
    const { text, ref } = request.body
    const problem = checkText(text, fastify.config.maxMessageChars)
    if (problem !== undefined) throw new HttpError(400, problem.code, problem.message)
    const outcome = await fastify.publish(request.user as User, topic, text, ref)
    if (!outcome.ok) throw new HttpError(statusByCode[outcome.code], outcome.code, outcome.message)
    return await reply.code(201).send({ message: outcome.message })
  })
}, { name: 'topics-api', dependencies: ['session', 'publish'] })
