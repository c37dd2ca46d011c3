import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'

/** Frames over this close the connection with 1009 (ws does it). */
export const maxPayloadBytes = 64 * 1024

export default fp(async function websocketServer (fastify) {
  await fastify.register(websocket, {
    options: { maxPayload: maxPayloadBytes, perMessageDeflate: false },
    // Each endpoint closes its own sockets (1001, after finishing in-flight work) in its
    // preClose; the plugin's default would close them first, with no code.
    preClose: function (done) {
      this.websocketServer.close()
      done()
    }
  })
}, { name: 'websocket', fastify: '5.x' })
