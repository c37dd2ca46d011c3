import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { createBot, findBot, listBots, maxBotsPerOwner, revokeBotKey } from '../src/bots.js'
import { HttpError } from '../src/errors.js'
import { BotsBody, CreatedBotBody, namePattern, NewBotBody, UserNameParams } from '../src/protocol.js'
import { standingOf, type User } from '../src/users.js'
import { sessionPlugin } from './session.js'

const nameRule = 'A name is 3 to 32 characters: letters, digits, _ . or -'

/** A bot event, one info line: who did what to which bot. Never its key. */
function botEvent (request: FastifyRequest, action: string, bot: string): void {
  request.log.info({ user: request.user?.name, action, bot, address: request.ip }, `bot: ${action}`)
}

/**
 * Bots (src/bots.ts): a user makes one and gets its key, once; lists the bots with a live
 * key; revokes a key (the owner or an administrator), which closes the bot's sockets on
 * every instance with 4401 (plugins/session-sockets.ts).
 */
export default fp(async function botsApi (fastify) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()

  app.post('/api/bots', {
    schema: { body: NewBotBody, response: { 201: CreatedBotBody } },
    schemaErrorFormatter: () => new Error('Send {"name"} as JSON'),
    preHandler: fastify.requireUser
  }, async (request, reply) => {
    const owner = request.user as User
    if (owner.bot === true) throw new HttpError(403, 'forbidden', 'A bot cannot make bots')
    const { name } = request.body
    if (!namePattern.test(name)) throw new HttpError(400, 'bad_request', nameRule)
    const made = await createBot(fastify.db, owner, name)
    if (!made.ok) {
      throw made.code === 'name_taken'
        ? new HttpError(409, 'name_taken', `The name ${name} is taken`)
        : new HttpError(409, 'too_many_bots', `A user has at most ${maxBotsPerOwner} bots with a key: revoke one first`)
    }
    botEvent(request, 'created', made.bot.name)
    // The key is a secret shown this once: no cache along the way may keep a copy.
    void reply.header('cache-control', 'no-store')
    return await reply.code(201).send({ bot: { name: made.bot.name, owner: owner.name }, key: made.key })
  })

  app.get('/api/bots', { schema: { response: { 200: BotsBody } }, preHandler: fastify.requireUser }, async (request) => {
    return { bots: await listBots(fastify.db, (request.user as User).id) }
  })

  app.delete('/api/bots/:name', { schema: { params: UserNameParams }, preHandler: fastify.requireUser }, async (request, reply) => {
    const caller = request.user as User
    const { name } = request.params
    const unknown = new HttpError(404, 'unknown_bot', `No bot with a key is called ${name}`)
    const bot = await findBot(fastify.db, name)
    if (bot === undefined) throw unknown
    if (bot.ownerId !== caller.id) {
      const standing = await standingOf(fastify.db, caller.id)
      if (standing?.admin !== true || standing.disabled) throw new HttpError(403, 'forbidden', 'Only its owner or an administrator may revoke a bot\'s key')
    }
    if (!await revokeBotKey(fastify.db, bot.id)) throw unknown
    // Its sockets close with 4401, here and on every other instance.
    fastify.programsEnded([bot.id])
    botEvent(request, 'revoked', bot.name)
    return await reply.code(204).send()
  })
}, { name: 'bots-api', fastify: '5.x', dependencies: ['config', 'database', sessionPlugin] })
