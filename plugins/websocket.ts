import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'

/** This plugin's name, for the `dependencies` of the endpoints. */
export const websocketPlugin = 'websocket'

/** Frames over this close the connection with 1009 (ws does it). */
export const maxPayloadBytes = 64 * 1024

export default fp(async function websocketServer (fastify) {
  await fastify.register(websocket, {
    options: { maxPayload: maxPayloadBytes, perMessageDeflate: false },
    // Each endpoint closes its own sockets (1001, after finishing in-flight work) in its
    // preClose; the plugin's default would close them first, with no code. Closing the
    // server makes ws refuse (503) an upgrade that passed its checks before the shutdown
    // and completes after it, so no socket opens once the endpoints have closed theirs.
    preClose: function (done) {
      this.websocketServer.close()
      done()
    }
  })

  // An upgrade that reaches a shutting-down instance (on a connection opened before it
  // stopped listening) is refused in plain words; @fastify/websocket's onResponse hook then
  // destroys its socket, which would otherwise stay open and hold the shutdown.
  fastify.addHook('onRequest', async (request, reply) => {
    if (!fastify.shuttingDown || !request.ws) return
    return await reply.code(503).send({ error: 'unavailable', message: 'This instance is shutting down; connect again' })
  })
}, { name: websocketPlugin, fastify: '5.x', dependencies: ['shutdown'] })
