import { fileURLToPath } from 'node:url'
import fp from 'fastify-plugin'
import fastifyStatic from '@fastify/static'
import { projectRoot } from '../src/paths.js'
import { pageModule } from '../src/protocol.js'

/**
 * The chat page and its assets from public/, and /protocol.js: the protocol's constants and
 * this server's limits as a module the page imports, so the page keeps no copy of them.
 */
export default fp(async function staticPage (fastify) {
  const protocolModule = pageModule(fastify.config)
  fastify.get('/protocol.js', async (_request, reply) => {
    return await reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(protocolModule)
  })
  await fastify.register(fastifyStatic, {
    root: fileURLToPath(new URL('public/', projectRoot)),
    prefix: '/',
    wildcard: false,
    index: ['index.html']
  })
}, { name: 'static', fastify: '5.x', dependencies: ['config'] })
