import fp from 'fastify-plugin'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { HttpError } from '../src/errors.js'
import { readPage } from '../src/message-store.js'
import { checkPublish, isValidTopic, MessageBody, type ErrorCode, MessagesBody, PageQuery, PublishBody, ReadBody, statusByErrorCode, TopicParams, topicPattern, TopicsBody } from '../src/protocol.js'
import { TokenBuckets } from '../src/token-bucket.js'
import { directoryReadBurst, directoryReadsPerSecond, listTopics, markRead } from '../src/topic-directory.js'
import type { User } from '../src/users.js'
import { accessPlugin } from './access.js'

/** A query string's number in digits only: coercion would also read 1e2, 0x10, +3 or " 1". */
const digits = /^[0-9]+$/

/**
 * The topics over HTTP: the directory with unread counts, read positions, history pages, and
 * publishing on the same publish path as the WebSocket. Each route of a topic declares what
 * it does there (`topicAccess`), and plugins/access.ts checks the topic's name and the user's
 * access before its handler runs.
 */
export default fp(async function topicsApi (fastify) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const directoryReads = new TokenBuckets<number>(directoryReadsPerSecond, directoryReadBurst)
  fastify.addHook('onClose', async () => { directoryReads.stop() })

  app.get('/api/topics/:topic/messages', {
    schema: { params: TopicParams, querystring: PageQuery, response: { 200: MessagesBody } },
    preValidation: async (request) => {
      const query = request.query as Record<string, unknown>
      for (const name of ['before', 'limit']) {
        const value = query[name]
        if (value !== undefined && (typeof value !== 'string' || !digits.test(value))) {
          throw new HttpError(400, 'bad_request', `${name} is a positive integer, in digits`)
        }
      }
    },
    preHandler: fastify.requireUser,
    config: { topicAccess: 'read' }
  }, async (request) => {
    const waitMs = fastify.historyReads.take((request.user as User).id)
    if (waitMs > 0) throw new HttpError(429, 'rate_limited', `Too many history reads; try again in ${waitMs} ms`, waitMs)
    const { before, limit = fastify.config.historyLimit } = request.query
    return { messages: await readPage(fastify.db, request.params.topic, before, limit) }
  })

  app.get('/api/topics', {
    schema: { response: { 200: TopicsBody } },
    preHandler: fastify.requireUser
  }, async (request) => {
    const userId = (request.user as User).id
    const waitMs = directoryReads.take(userId)
    if (waitMs > 0) throw new HttpError(429, 'rate_limited', `Too many topic list reads; try again in ${waitMs} ms`, waitMs)
    return { topics: await listTopics(fastify.db, userId) }
  })

  app.put('/api/topics/:topic/read', {
    schema: { params: TopicParams, body: ReadBody },
    preHandler: fastify.requireUser,
    config: { topicAccess: 'read' }
  }, async (request, reply) => {
    const { topic } = request.params
    if (!await markRead(fastify.db, (request.user as User).id, topic, request.body.id)) {
      throw new HttpError(404, 'not_found', `There is no topic ${topic}`)
    }
    return await reply.code(204).send()
  })

  app.post('/api/topics/:topic/messages', {
    schema: { params: TopicParams, body: PublishBody, response: { 201: MessageBody } },
    // Refusals of a bad body are publish outcomes too: counted here, answered by the error handler.
    attachValidation: true,
    preHandler: fastify.requireUser,
    // src/publisher.ts asks the access module: a private topic's non-member is `forbidden` (403).
    config: { topicAccess: 'publish path' }
  }, async (request, reply) => {
    const refuse = (code: ErrorCode, error: Error): never => {
      fastify.metrics.published(code)
      throw error
    }
    if (request.validationError !== undefined) refuse('bad_request', request.validationError)
    const { topic } = request.params
    if (!isValidTopic(topic)) refuse('bad_topic', new HttpError(400, 'bad_topic', `A topic name matches ${String(topicPattern)}`))
    const { text, data, ref } = request.body
    const problem = checkPublish(text, data, fastify.config.maxMessageChars)
    if (problem !== undefined) refuse(problem.code, new HttpError(400, problem.code, problem.message))
    const outcome = await fastify.publish(request.user as User, topic, text, ref, data)
    if (!outcome.ok) throw new HttpError(statusByErrorCode[outcome.code], outcome.code, outcome.message, outcome.retryAfterMs)
    return await reply.code(201).send({ message: outcome.message })
  })
}, { name: 'topics-api', fastify: '5.x', dependencies: ['config', 'database', 'session', accessPlugin, 'publish', 'history-reads', 'metrics'] })
