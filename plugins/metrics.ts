import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import fp from 'fastify-plugin'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import { errorCodes, type ErrorCode } from '../src/protocol.js'
import { StartupError } from '../src/errors.js'
import { version } from '../src/version.js'

/** How a publish attempt ended: its ack, or the code of its refusal. */
export type PublishResult = 'acked' | ErrorCode

/**
 * How an account request ended: a registration, a login, a login refused for its name or
 * password, a login or registration refused by the attempt limits, a logout.
 */
export const authOutcomes = ['registered', 'login', 'failed', 'limited', 'logout'] as const
export type AuthOutcome = typeof authOutcomes[number]

/**
 * Numbers kept where they change (the topic bus, the endpoint) as plain counts, and read
 * only when Prometheus scrapes: nothing is counted per delivery but `n++`. Each source adds
 * to the others of its name.
 */
export interface MetricSources {
  connections: () => number
  subscriptions: () => number
  deliveries: () => number
  listenUp: () => number
  slowConsumerCloses: () => number
}

/** What the rest of Canopy tells the metrics; with METRICS_PORT unset, every call does nothing. */
export interface Metrics {
  readFrom(sources: Partial<MetricSources>): void
  /** One publish attempt, WebSocket or HTTP, counted once with how it ended. */
  published(result: PublishResult): void
  /** One group-commit statement, committed or failed: how long it took and how many publishes it carried. */
  committed(seconds: number, batchSize: number): void
  /** One message committed on another instance and handed to the subscribers here this long after. */
  busLag(seconds: number): void
  /** One WebSocket upgrade answered with this HTTP status instead of a socket. */
  upgradeRefused(statusCode: number): void
  /** One register, login or logout request, counted with how it ended. */
  authenticated(outcome: AuthOutcome): void
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
    /** http://host:port of the metrics listener once the app is ready; undefined without METRICS_PORT. */
    readonly metricsUrl: string | undefined
  }
}

const commitBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
/** Powers of two up to the largest batch (src/publish-queue.ts). */
const batchSizeBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256]
const busLagBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

const off: Metrics = { readFrom () {}, published () {}, committed () {}, busLag () {}, upgradeRefused () {}, authenticated () {} }

/**
 * Prometheus metrics at http://METRICS_HOST:METRICS_PORT/metrics: a node:http listener of its own,
 * never on PORT, so the metrics stay private when the app is public. Opened when the app is
 * ready, closed with it. Without METRICS_PORT there is no listener and no registry.
 */
export default fp(async function metrics (fastify) {
  const { metricsPort, metricsHost } = fastify.config
  let url: string | undefined
  fastify.decorate('metricsUrl', { getter: () => url })
  if (metricsPort === undefined) {
    fastify.decorate('metrics', off)
    return
  }

  // A registry of this app's own: two apps in one process (tests) never mix their counts.
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  fastify.decorate('metrics', prometheusMetrics(registry))

  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: metrics are at /metrics\n')
      return
    }
    registry.metrics().then((text) => {
      response.writeHead(200, { 'content-type': registry.contentType }).end(text)
    }, (error: unknown) => {
      fastify.log.error({ err: error }, 'metrics: collecting failed')
      response.writeHead(500, { 'content-type': 'text/plain' }).end('Collecting the metrics failed\n')
    })
  })
  fastify.addHook('onReady', async () => {
    url = await listen(server, metricsPort, metricsHost)
    fastify.log.info({ url: `${url}/metrics` }, 'metrics listening')
  })
  fastify.addHook('onClose', async () => {
    if (!server.listening) return
    await new Promise<void>((resolve) => {
      server.close(() => { resolve() })
      // A scraper's keep-alive connection would hold the close open.
      server.closeAllConnections()
    })
  })
}, { name: 'metrics', fastify: '5.x', dependencies: ['config'] })

function prometheusMetrics (registry: Registry): Metrics {
  const sources: { [Name in keyof MetricSources]: Array<MetricSources[Name]> } = {
    connections: [], subscriptions: [], deliveries: [], listenUp: [], slowConsumerCloses: []
  }
  const read = (name: keyof MetricSources): number => sources[name].reduce((sum, source) => sum + source(), 0)
  const registers = [registry]

  const gauge = (name: string, help: string, source: keyof MetricSources): Gauge =>
    new Gauge({ name, help, registers, collect () { this.set(read(source)) } })
  /** A counter whose total is kept elsewhere: each scrape adds what it grew by. */
  const countedElsewhere = (name: string, help: string, source: keyof MetricSources): Counter => {
    let seen = 0
    return new Counter({
      name,
      help,
      registers,
      collect () {
        const total = read(source)
        this.inc(Math.max(0, total - seen))
        seen = Math.max(seen, total)
      }
    })
  }

  // Which build each instance runs, for a dashboard across a rolling deploy.
  new Gauge({ name: 'canopy_build_info', help: 'The version this instance runs (label version); always 1', labelNames: ['version'], registers }).set({ version }, 1)
  gauge('canopy_connections', 'Open /chat connections on this instance', 'connections')
  gauge('canopy_subscriptions', 'Topics subscribed to by the connections on this instance, one per connection and topic', 'subscriptions')
  gauge('canopy_listen_up', '1 when this instance hears every other one (its LISTEN connection is up; always on the embedded database), else 0', 'listenUp')
  countedElsewhere('canopy_deliveries_total', 'Frames the topic bus handed to subscribers on this instance (messages, histories, presence)', 'deliveries')
  countedElsewhere('canopy_slow_consumer_closes_total', 'Connections closed with 1013 because their unsent data passed SEND_BUFFER_LIMIT', 'slowConsumerCloses')

  const publishes = new Counter({ name: 'canopy_publishes_total', help: 'Publish attempts (WebSocket and HTTP) by how they ended: acked, or the error code', labelNames: ['outcome'], registers })
  const byResult = new Map((['acked', ...errorCodes] as PublishResult[]).map((result) => {
    // Every outcome shown from the start, at 0, so that a rate by outcome has each series.
    publishes.inc({ outcome: result }, 0)
    return [result, publishes.labels(result)]
  }))
  const commitSeconds = new Histogram({ name: 'canopy_commit_seconds', help: 'Time of each group-commit statement, committed or failed', buckets: commitBuckets, registers })
  const batchSize = new Histogram({ name: 'canopy_commit_batch_size', help: 'Publishes carried by each group-commit statement', buckets: batchSizeBuckets, registers })
  const busLag = new Histogram({
    name: 'canopy_bus_lag_seconds',
    help: 'From the commit on another instance (the database clock) to the message reaching the subscribers here (this clock)',
    buckets: busLagBuckets,
    registers
  })
  const wsRefusals = new Counter({ name: 'canopy_ws_refusals_total', help: 'WebSocket upgrades refused before they opened, by HTTP status (401, 403, 429, …)', labelNames: ['status'], registers })

  const auth = new Counter({ name: 'canopy_auth_total', help: 'Register, login and logout requests by how they ended: registered, login, failed, limited, logout', labelNames: ['outcome'], registers })
  for (const outcome of authOutcomes) auth.inc({ outcome }, 0)

  return {
    readFrom (given) {
      for (const name of Object.keys(given) as Array<keyof MetricSources>) {
        const source = given[name]
        if (source !== undefined) sources[name].push(source)
      }
    },
    published (result) { byResult.get(result)?.inc() },
    committed (seconds, size) {
      commitSeconds.observe(seconds)
      batchSize.observe(size)
    },
    busLag (seconds) { busLag.observe(seconds) },
    upgradeRefused (statusCode) { wsRefusals.inc({ status: String(statusCode) }) },
    authenticated (outcome) { auth.inc({ outcome }) }
  }
}

/** Listens; resolves with the listener's URL. A port that cannot be had is one line at start. */
async function listen (server: Server, port: number, host: string): Promise<string> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (error) {
    const code = (error as { code?: string }).code
    if (code === 'EADDRINUSE') throw new StartupError(`METRICS_PORT ${port} on ${host} is in use: stop what holds it, or set METRICS_PORT`)
    if (code === 'EADDRNOTAVAIL') throw new StartupError(`METRICS_HOST ${host} is not an address of this machine`)
    if (code === 'EACCES') throw new StartupError(`Not allowed to listen on METRICS_PORT ${port}: choose a port above 1023`)
    throw error
  }
  const { address, port: bound } = server.address() as AddressInfo
  return `http://${address.includes(':') ? `[${address}]` : address}:${bound}`
}
