import { fileURLToPath } from 'node:url'
import fp from 'fastify-plugin'
import fastifyStatic from '@fastify/static'
import { projectRoot } from '../src/paths.js'

/** The chat page and its assets from public/. */
export default fp(async function staticPage (fastify) {
  await fastify.register(fastifyStatic, {
    root: fileURLToPath(new URL('public/', projectRoot)),
    prefix: '/',
    wildcard: false,
    index: ['index.html']
  })
}, { name: 'static' })
