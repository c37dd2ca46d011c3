import { fileURLToPath } from 'node:url'
import fp from 'fastify-plugin'
import fastifyStatic from '@fastify/static'
import { projectRoot } from '../src/paths.js'
import { pageModule } from '../src/protocol.js'

/**
 * The chat page and its assets from public/; /protocol.js: the protocol's constants and
 * this server's limits as a module the page imports, so the page keeps no copy of them; and
 * the client library (client/src/, docs/client.md) under /client/, as it is: the page is
 * built on it, with no build step.
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
  await fastify.register(fastifyStatic, {
    root: fileURLToPath(new URL('client/src/', projectRoot)),
    prefix: '/client/',
    wildcard: false,
    decorateReply: false,
    cacheControl: false,
    setHeaders: (response) => { response.setHeader('cache-control', 'no-cache') }
  })
}, { name: 'static', fastify: '5.x', dependencies: ['config'] })
