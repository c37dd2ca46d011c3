import fp from 'fastify-plugin'
import { ChatEndpoint, type ChatConnection } from '../src/chat-endpoint.js'
import { ChatHandshake } from '../src/chat-handshake.js'
import { ChatPolicing } from '../src/chat-policing.js'
import { addEndpoint } from '../src/endpoint.js'
import type { ServerFrame } from '../src/protocol.js'
import type { ChatState } from '../src/chat-handshake.js'
import { accessPlugin } from './access.js'
import { publishPlugin } from './publish.js'
import { sessionPlugin } from './session.js'
import { sessionSocketsPlugin } from './session-sockets.js'
import { websocketPlugin } from './websocket.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The open /chat connections of this instance. */
    chatConnections: ReadonlySet<ChatConnection>
  }
}

/**
 * /chat (src/chat-endpoint.ts), registered on the endpoint layer, with its metrics, and told
 * of membership changes (src/access.ts).
 */
export default fp(async function chatEndpoint (fastify) {
  const { config, metrics } = fastify
  const policing = new ChatPolicing<ChatConnection>({
    publishRatePerSecond: config.publishRatePerSecond,
    publishBurst: config.publishBurst,
    log: fastify.log
  })
  fastify.addHook('onClose', async () => { policing.stop() })

  const chat = new ChatEndpoint({
    keepaliveIntervalMs: config.keepaliveIntervalMs,
    maxBufferedBytes: config.sendBufferLimitBytes,
    maxMessageChars: config.maxMessageChars,
    historyLimit: config.historyLimit,
    topicCreatesPerHour: config.topicCreatesPerHour,
    log: fastify.log,
    handshake: new ChatHandshake({ allowedOrigins: config.allowedOrigins, maxConnectionsPerUser: config.maxConnectionsPerUser }),
    policing,
    topics: fastify.topicBus,
    presence: fastify.presence,
    publisher: fastify.publisher,
    topicCreations: fastify.topicCreations,
    access: fastify.access,
    historyReads: fastify.historyReads,
    sessionSockets: fastify.sessionSockets,
    admitToken: fastify.admitToken,
    published: (result) => { metrics.published(result) },
    upgradeRefused: (statusCode) => { metrics.upgradeRefused(statusCode) }
  })
  const endpoint = addEndpoint<ChatState, ServerFrame>(fastify, chat)
  // Removal holds everywhere: a change made here or heard from another instance reaches the
  // user's sockets here; after a LISTEN outage, members are read again before any catch-up.
  fastify.access.onChange((change, before) => { chat.membersChanged(change, before) })
  fastify.topicBus.beforeCatchUp(async () => { await chat.recheckMembers() })

  fastify.decorate('chatConnections', endpoint.connections)
  metrics.readFrom({
    connections: () => endpoint.connections.size,
    subscriptions: () => {
      let subscriptions = 0
      for (const connection of endpoint.connections) subscriptions += connection.state.topics.size
      return subscriptions
    },
    slowConsumerCloses: () => endpoint.slowConsumerCloses
  })
}, {
  name: 'chat-endpoint',
  fastify: '5.x',
  dependencies: ['config', websocketPlugin, sessionPlugin, sessionSocketsPlugin, 'accounts', 'metrics', 'topic-bus', accessPlugin, 'presence', publishPlugin, 'history-reads']
})
