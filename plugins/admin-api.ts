import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { botIdsOf } from '../src/bots.js'
import { HttpError } from '../src/errors.js'
import { hashPassword } from '../src/passwords.js'
import { Credentials, UserBody, UserNameParams, UsersBody, UsersQuery } from '../src/protocol.js'
import { createUser, disableUser, enableUser, listUsers, standingOf, type User } from '../src/users.js'
import { registrationError } from './accounts.js'
import { sessionPlugin } from './session.js'

/** Every route of this plugin is under this prefix, and only there. */
export const adminPrefix = '/api/admin'

const unknownUser = (name: string): HttpError => new HttpError(404, 'unknown_user', `Nobody is called ${name}`)

/** An administrator's action, one info line: who did what to whom. */
function adminEvent (request: FastifyRequest, action: string, fields: Record<string, unknown>): void {
  request.log.info({ admin: request.user?.name, action, ...fields, address: request.ip }, `admin: ${action}`)
}

/**
 * What administrators do (`npm run admin -- grant NAME` makes one): list the users, disable
 * and enable an account, create one (the only way when REGISTRATION=closed). One check guards
 * every route under /api/admin: a session (401), then an administrator's, read from the
 * database on every request, so a revoke holds at once (403 `forbidden`).
 */
export default fp(async function adminApi (fastify) {
  const sessionEnded = (sessionId: string): void => { fastify.sessionEnded(sessionId) }

  const requireAdmin = async (request: FastifyRequest): Promise<void> => {
    await fastify.requireUser(request)
    const standing = await standingOf(fastify.db, (request.user as User).id)
    if (standing?.admin !== true || standing.disabled) throw new HttpError(403, 'forbidden', 'Only an administrator may do this')
  }

  await fastify.register(async (admin) => {
    // onRequest: before the body is read or validated, so nothing of a route answers anyone else.
    admin.addHook('onRequest', requireAdmin)
    const app = admin.withTypeProvider<TypeBoxTypeProvider>()

    app.get('/users', { schema: { querystring: UsersQuery, response: { 200: UsersBody } } }, async (request) => {
      const { after } = request.query
      return { users: await listUsers(fastify.db.orm, { after: after === '' ? undefined : after }) }
    })

    app.post('/users', {
      schema: { body: Credentials, response: { 201: UserBody } },
      schemaErrorFormatter: registrationError
    }, async (request, reply) => {
      const { username, password } = request.body
      const user = await createUser(fastify.db.orm, username, await hashPassword(password))
      if (user === undefined) throw new HttpError(409, 'name_taken', `The name ${username} is taken`)
      adminEvent(request, 'created', { user: user.name })
      return await reply.code(201).send({ user })
    })

    app.post('/users/:name/disable', { schema: { params: UserNameParams } }, async (request, reply) => {
      const { name } = request.params
      // Names are unique without regard to case: this is the administrator's own account.
      if (name.toLowerCase() === (request.user as User).name.toLowerCase()) {
        throw new HttpError(400, 'bad_request', 'An administrator cannot disable their own account')
      }
      const disabled = await disableUser(fastify.db, name)
      if (disabled === undefined) throw unknownUser(name)
      // Their sockets close with 4401, here and on every other instance, with those of their
      // programs: their own (a token's) and their bots' (whose keys stop working meanwhile).
      for (const sessionId of disabled.endedSessions) sessionEnded(sessionId)
      fastify.programsEnded([disabled.user.id, ...await botIdsOf(fastify.db, disabled.user.id)])
      adminEvent(request, 'disabled', { user: disabled.user.name, sessions: disabled.endedSessions.length })
      return await reply.code(204).send()
    })

    app.post('/users/:name/enable', { schema: { params: UserNameParams } }, async (request, reply) => {
      const user = await enableUser(fastify.db.orm, request.params.name)
      if (user === undefined) throw unknownUser(request.params.name)
      adminEvent(request, 'enabled', { user: user.name })
      return await reply.code(204).send()
    })
  }, { prefix: adminPrefix })
}, { name: 'admin-api', fastify: '5.x', dependencies: ['config', 'database', sessionPlugin] })
