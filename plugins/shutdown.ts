import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    /** True once the app began to close: no new connection is taken, and each request ends its own. */
    readonly shuttingDown: boolean
  }
}

/**
 * HTTP requests still unanswered this long after the shutdown began have their connections
 * cut: a client that sends half a request, or one stuck on a stalled database, must not keep
 * the process past the 10 s that server/server.ts gives the whole shutdown.
 */
const httpDrainMs = 6000

/**
 * What an instance does from the first moment of its shutdown (SIGTERM, see server/server.ts),
 * before the endpoints close their sockets: it stops listening at once, so a load balancer
 * sees its connections refused and goes to another instance, instead of sending upgrades
 * here while the sockets close. Requests already on an open connection are still served,
 * each with `Connection: close`, so every keep-alive connection ends with its request.
 */
export default fp(async function shutdown (fastify) {
  let shuttingDown = false
  fastify.decorate('shuttingDown', { getter: () => shuttingDown })

  fastify.addHook('preClose', async () => {
    shuttingDown = true
    const { server } = fastify
    if (!server.listening) return
    // Fastify closes the listener only after every preClose hook (the sockets' close): too late.
    // Node's close also ends the keep-alive connections that are idle now.
    server.close()
    setTimeout(() => { server.closeAllConnections() }, httpDrainMs).unref()
    fastify.log.info('stopped listening: closing sockets and finishing the requests in flight')
  })

  fastify.addHook('onSend', async (_request, reply) => {
    if (shuttingDown) reply.header('connection', 'close')
  })
}, { name: 'shutdown', fastify: '5.x' })
