import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import type { LoadOutput, LoadPlan, LoadResult, Mark } from './load-protocol.js'
import { openSocketIoPublisher, openWsPublisher, type Publisher, type PublisherEvents } from './publishers.js'
import { nowMicros, RawSubscriber, readTimestamp, type RawSubscriberOptions, type SubscriberSink } from './raw-client.js'
import { servedTopics, servingInstance, type ScenarioParams } from './scenarios.js'
import { percentile } from './stats.js'

/**
 * The load generator: one process, driven by a plan from the orchestrator (run.ts), that
 * opens the subscribers and publishers of one scenario against one system, runs it, and
 * reports what crossed the sockets. Every figure it reports comes from frames it received.
 */

const plan = JSON.parse(process.argv[2] ?? '{}') as LoadPlan
const params: ScenarioParams = plan.scenario.params
const control = createInterface({ input: process.stdin })[Symbol.asyncIterator]()

const connectConcurrency = 64
const connectTimeoutMs = 60_000
const canopyPassword = 'bench-password-1'

function emit (output: LoadOutput): void {
  process.stdout.write(JSON.stringify(output) + '\n')
}

/** Tells the orchestrator to take its samples now, and waits until it has. */
async function mark (name: Mark): Promise<void> {
  const { user, system } = process.cpuUsage()
  emit({ mark: name, cpuSeconds: (user + system) / 1e6 })
  const reply = await control.next()
  if (reply.done === true) throw new Error('the orchestrator went away')
}

class Failure extends Error {}

// ---- the system under test: how to reach it ----

interface Access {
  subscriber(instance: number, topic: string, sink: SubscriberSink, keepSubscribed?: boolean): RawSubscriberOptions
  publisher(instance: number, topic: string, events: PublisherEvents): Promise<Publisher>
}

async function canopyAccount (base: string, username: string): Promise<{ cookie: string, ticket: string }> {
  const registered = await fetch(`${base}/api/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password: canopyPassword })
  })
  if (registered.status !== 201) throw new Failure(`register ${username}: ${registered.status} ${await registered.text()}`)
  const cookie = registered.headers.getSetCookie().map((c) => c.split(';')[0] ?? '').find((c) => c.startsWith('canopy.sid='))
  if (cookie === undefined) throw new Failure('register: no canopy.sid cookie')
  const me = await fetch(`${base}/api/me`, { headers: { cookie } })
  const body = await me.json() as { wsTicket?: string }
  if (me.status !== 200 || body.wsTicket === undefined) throw new Failure(`GET /api/me: ${me.status}`)
  return { cookie, ticket: body.wsTicket }
}

async function access (): Promise<Access> {
  const at = (instance: number): { host: string, port: number } => {
    const server = plan.instances[instance % plan.instances.length]
    if (server === undefined) throw new Failure('no server instance')
    return server
  }
  if (plan.system === 'canopy') {
    // Real accounts: one for the subscribers, one for the publishers; a login is valid on every instance.
    const base = `http://${at(0).host}:${at(0).port}`
    const subscriber = await canopyAccount(base, 'bench_sub')
    const publisher = await canopyAccount(base, 'bench_pub')
    return {
      subscriber: (instance, topic, sink, keepSubscribed) => ({
        ...at(instance),
        path: `/chat?ticket=${encodeURIComponent(subscriber.ticket)}&topic=${topic}`,
        headers: { Cookie: subscriber.cookie },
        framing: 'json',
        sink,
        keepSubscribed
      }),
      // Subscribed to a topic of its own, so that it does not receive what it publishes.
      publisher: async (instance, _topic, events) => {
        const { host, port } = at(instance)
        return await openWsPublisher(`ws://${host}:${port}/chat?ticket=${encodeURIComponent(publisher.ticket)}&topic=publishers`,
          { Cookie: publisher.cookie }, events)
      }
    }
  }
  if (plan.system === 'limit') {
    return {
      subscriber: (instance, topic, sink, keepSubscribed) => ({ ...at(instance), path: `/?topic=${topic}`, framing: 'json', sink, keepSubscribed }),
      // The limit relays to the topic of the sender's URL, never back to the sender.
      publisher: async (instance, topic, events) => {
        const { host, port } = at(instance)
        return await openWsPublisher(`ws://${host}:${port}/?topic=${topic}`, {}, events)
      }
    }
  }
  return {
    subscriber: (instance, topic, sink, keepSubscribed) => ({
      ...at(instance),
      path: `/socket.io/?EIO=4&transport=websocket&topic=${topic}&user=bench_sub`,
      framing: 'socketio',
      sink,
      keepSubscribed
    }),
    publisher: async (instance, _topic, events) => {
      const { host, port } = at(instance)
      return await openSocketIoPublisher(`http://${host}:${port}`, 'publishers', events)
    }
  }
}

// ---- connections ----

async function connectAll (count: number, options: (i: number) => RawSubscriberOptions): Promise<RawSubscriber[]> {
  const subscribers: RawSubscriber[] = []
  let next = 0
  const deadline = Date.now() + connectTimeoutMs
  let failed = false
  const worker = async (): Promise<void> => {
    while (next < count && !failed) {
      const subscriber = new RawSubscriber(options(next++))
      subscribers.push(subscriber)
      await Promise.race([subscriber.ready.catch(() => {}), sleep(Math.max(0, deadline - Date.now()), undefined, { ref: false })])
      if (!subscriber.isReady) {
        failed = true
        throw new Failure(`subscriber ${subscribers.length} of ${count} did not subscribe: ${subscriber.closeReason ?? 'timed out'}`)
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.min(connectConcurrency, count) }, worker))
  } catch (error) {
    for (const subscriber of subscribers) subscriber.destroy()
    throw error
  }
  return subscribers
}

/** The first subscriber that lost its connection, if any. */
function closedSubscriber (subscribers: readonly RawSubscriber[]): string | undefined {
  return subscribers.find((s) => s.closeReason !== undefined)?.closeReason
}

// ---- publishing ----

let sequence = 0
const padding = 'x'.repeat(1024)

/** A message text of params.textBytes bytes whose last part is the send time. */
function messageText (): string {
  const head = `bench message ${++sequence} `
  const stamp = `~T${nowMicros()}~`
  return head + padding.slice(0, Math.max(0, params.textBytes - head.length - stamp.length)) + stamp
}

interface PublishCounters {
  acks: number
  errors: number
  firstError: string | undefined
}

function publisherEvents (counters: PublishCounters, onAck?: () => void): PublisherEvents {
  return {
    ack: () => { counters.acks++; onAck?.() },
    error: (message) => {
      counters.errors++
      counters.firstError ??= message
    }
  }
}

// ---- scenarios ----

function topicNames (): string[] {
  return params.topics === 1 ? ['bench'] : Array.from({ length: params.topics }, (_, i) => `t${i}`)
}

/**
 * The topics of a throughput scenario and the instance each subscriber and publisher is on:
 * fan-out and publish-heavy split every topic's subscribers over the instances (fan-out puts
 * every publisher on the first); scale gives each instance topics of its own, served there only.
 */
interface Placement {
  topics: string[]
  subscriber: (i: number) => { instance: number, topic: string }
  publisher: (j: number) => { instance: number, topics: string[] }
}

function placement (): Placement {
  const instances = plan.instances.length
  if (plan.scenario.kind === 'scale') {
    const served = Array.from({ length: instances }, (_, k) => servedTopics(params, k, instances))
    const topics = served.flat()
    return {
      topics,
      subscriber: (i) => {
        const topic = topics[i % topics.length] as string
        return { instance: servingInstance(topic) ?? 0, topic }
      },
      publisher: (j) => ({ instance: j % instances, topics: served[j % instances] as string[] })
    }
  }
  const topics = topicNames()
  return {
    topics,
    subscriber: (i) => ({ instance: Math.floor(i / topics.length) % instances, topic: topics[i % topics.length] as string }),
    publisher: (j) => ({ instance: plan.scenario.kind === 'fanout' ? 0 : j % instances, topics })
  }
}

/** One measured window of a throughput run: what arrived between its marks. */
async function measureWindow (counts: () => { deliveries: number, acks: number }): Promise<{ seconds: number, deliveries: number, acks: number }> {
  await mark('window-start')
  const start = { at: performance.now(), ...counts() }
  await sleep(params.measureMs)
  await mark('window-end')
  const end = { at: performance.now(), ...counts() }
  return { seconds: (end.at - start.at) / 1000, deliveries: end.deliveries - start.deliveries, acks: end.acks - start.acks }
}

/**
 * Fan-out, publish-heavy and scale: publishers at full speed, each with a window of unacked
 * publishes. Scale has a second window, the control: only the first instance's publishers
 * go on, so the others hear NOTIFYs for topics they do not serve and nothing else.
 */
async function throughput (system: Access): Promise<LoadResult> {
  const place = placement()
  let deliveries = 0
  const sink: SubscriberSink = { message: () => { deliveries++ } }
  const subscribers = await connectAll(params.subscribers, (i) => {
    const { instance, topic } = place.subscriber(i)
    return system.subscriber(instance, topic, sink)
  })
  const subscribersPerTopic = params.subscribers / place.topics.length

  const counters: PublishCounters = { acks: 0, errors: 0, firstError: undefined }
  let sent = 0
  let publishing = true
  let control = false
  interface Placed { publisher: Publisher, instance: number, topics: readonly string[] }
  const pump = ({ publisher, instance, topics }: Placed): void => {
    if (!publishing || (control && instance !== 0)) return
    while (publisher.inflight < params.window) {
      const topic = topics.length === 1 ? topics[0] as string : topics[Math.floor(Math.random() * topics.length)] as string
      sent++
      publisher.publish(topic, messageText())
    }
  }
  const publishers: Placed[] = []
  for (let j = 0; j < params.publishers; j++) {
    const { instance, topics } = place.publisher(j)
    const placed: Placed = { instance, topics, publisher: await system.publisher(instance, topics[0] as string, publisherEvents(counters, () => { pump(placed) })) }
    publishers.push(placed)
  }
  try {
    for (const placed of publishers) pump(placed)
    await sleep(params.warmupMs)
    const counts = (): { deliveries: number, acks: number } => ({ deliveries, acks: counters.acks })
    const measured = await measureWindow(counts)
    const owedAtWindowEnd = Math.max(0, counters.acks * subscribersPerTopic - deliveries)
    const controlFigures: Record<string, number> = {}
    if (plan.scenario.kind === 'scale') {
      // The other instances' publishers stop once their window is acked: the warm-up lets it drain.
      control = true
      await sleep(params.warmupMs)
      const controlWindow = await measureWindow(counts)
      controlFigures.controlPublishedPerSecond = controlWindow.acks / controlWindow.seconds
    }
    publishing = false

    // Every topic has as many subscribers: each acked publish owes subscribersPerTopic deliveries.
    const drained = await until(() => counters.acks + counters.errors >= sent && deliveries >= counters.acks * subscribersPerTopic, params.drainMs)
    const expected = counters.acks * subscribersPerTopic
    const notes: string[] = []
    if (!drained) notes.push(`after ${params.drainMs / 1000} s: ${sent - counters.acks} publishes unacked, ${expected - deliveries} deliveries missing`)
    if (deliveries > expected) notes.push(`${deliveries - expected} deliveries more than published × subscribers`)
    const failed = counters.errors > 0
      ? `${counters.errors} publishes answered with an error, first: ${counters.firstError ?? ''}`
      : closedSubscriber(subscribers)
    if (failed !== undefined) return { ok: false, reason: failed, figures: {}, counts: {}, notes }
    return {
      ok: true,
      figures: {
        publishedPerSecond: measured.acks / measured.seconds,
        deliveredPerSecond: measured.deliveries / measured.seconds,
        // Acked but not yet delivered when the window closed: a system that acks before it delivers runs ahead.
        behindAtWindowEnd: owedAtWindowEnd,
        ...controlFigures
      },
      counts: {
        windowSeconds: measured.seconds,
        windowDeliveries: measured.deliveries,
        windowAcks: measured.acks,
        published: sent,
        acked: counters.acks,
        delivered: deliveries,
        expectedDeliveries: expected,
        lostOrLate: Math.max(0, expected - deliveries)
      },
      notes
    }
  } finally {
    publishing = false
    for (const { publisher } of publishers) publisher.close()
    for (const subscriber of subscribers) subscriber.destroy()
  }
}

/** Latency: an open-loop publisher at a fixed rate; every subscriber times every message. */
async function latency (system: Access): Promise<LoadResult> {
  const instances = plan.instances.length
  const samples = new Float64Array(Math.ceil(params.subscribers * params.ratePerSecond * (params.measureMs / 1000 + 1) * 1.2))
  let sampleCount = 0
  let deliveries = 0
  // Only messages sent inside the window count; the clock is the load generator's own.
  let windowStartMicros = Infinity
  let windowEndMicros = Infinity
  const sink: SubscriberSink = {
    message: (payload, marker, end, now) => {
      deliveries++
      const sentAt = readTimestamp(payload, marker, end)
      if (sentAt >= windowStartMicros && sentAt < windowEndMicros && sampleCount < samples.length) {
        samples[sampleCount++] = now - sentAt / 1000
      }
    }
  }
  const subscribers = await connectAll(params.subscribers, (i) => system.subscriber(i % instances, 'bench', sink))
  const counters: PublishCounters = { acks: 0, errors: 0, firstError: undefined }
  const publisher = await system.publisher(0, 'bench', publisherEvents(counters))
  const intervalMs = 1000 / params.ratePerSecond
  let sent = 0
  let publishing = true
  let next = performance.now()
  const tick = (): void => {
    if (!publishing) return
    const now = performance.now()
    while (next <= now) {
      publisher.publish('bench', messageText())
      sent++
      next += intervalMs
    }
    setTimeout(tick, Math.max(0, next - performance.now()))
  }
  try {
    tick()
    await sleep(params.warmupMs)
    await mark('window-start')
    windowStartMicros = nowMicros()
    await sleep(params.measureMs)
    windowEndMicros = nowMicros()
    await mark('window-end')
    publishing = false
    const expected = sent * params.subscribers
    const drained = await until(() => counters.acks + counters.errors >= sent && deliveries >= expected, params.drainMs)
    const notes: string[] = drained ? [] : [`after ${params.drainMs / 1000} s: ${expected - deliveries} deliveries missing`]
    const failed = counters.errors > 0
      ? `${counters.errors} publishes answered with an error, first: ${counters.firstError ?? ''}`
      : closedSubscriber(subscribers) ?? (sampleCount === 0 ? 'no message arrived in the window' : undefined)
    if (failed !== undefined) return { ok: false, reason: failed, figures: {}, counts: {}, notes }
    const sorted = samples.subarray(0, sampleCount).sort()
    return {
      ok: true,
      figures: { p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), maxMs: sorted[sorted.length - 1] as number },
      counts: { samples: sampleCount, published: sent, delivered: deliveries, expectedDeliveries: expected },
      notes
    }
  } finally {
    publishing = false
    publisher.close()
    for (const subscriber of subscribers) subscriber.destroy()
  }
}

/** Idle memory: the orchestrator samples the server with none open, then with them all open. */
async function idleMemory (system: Access): Promise<LoadResult> {
  const sink: SubscriberSink = { message: () => {} }
  if (params.warmupConnects > 0) {
    // A few connections first, so that code loaded on first use is not counted per connection.
    const warmup = await connectAll(params.warmupConnects, () => system.subscriber(0, 'idle', sink))
    for (const subscriber of warmup) subscriber.destroy()
    // Long enough for the servers to let go of them (Canopy keeps a closed socket for 2 s, closeGraceMs).
    await sleep(2500)
  }
  await mark('memory-baseline')
  const subscribers = await connectAll(params.subscribers, () => system.subscriber(0, 'idle', sink))
  try {
    await sleep(1000)
    await mark('memory-loaded')
    const failed = closedSubscriber(subscribers)
    if (failed !== undefined) return { ok: false, reason: failed, figures: {}, counts: {}, notes: [] }
    return { ok: true, figures: {}, counts: { connections: subscribers.length }, notes: [] }
  } finally {
    for (const subscriber of subscribers) subscriber.destroy()
  }
}

/** Connect-and-history: one connect at a time, each to a topic holding historyMessages messages. */
async function connectHistory (system: Access): Promise<LoadResult> {
  const counters: PublishCounters = { acks: 0, errors: 0, firstError: undefined }
  const publisher = await system.publisher(0, 'hist', publisherEvents(counters))
  for (let i = 0; i < params.historyMessages; i++) publisher.publish('hist', messageText())
  const subscribers: RawSubscriber[] = []
  try {
    if (!await until(() => counters.acks + counters.errors >= params.historyMessages, params.drainMs)) {
      throw new Failure(`only ${counters.acks} of ${params.historyMessages} history messages were acked`)
    }
    if (counters.errors > 0) throw new Failure(`publishing the history: ${counters.firstError ?? ''}`)
    const times: number[] = []
    const sink: SubscriberSink = { message: () => {} }
    for (let i = 0; i < params.warmupConnects + params.connects; i++) {
      if (i === params.warmupConnects) await mark('window-start')
      const subscriber = new RawSubscriber(system.subscriber(0, 'hist', sink, true))
      subscribers.push(subscriber)
      try {
        await subscriber.ready
      } catch (error) {
        throw new Failure(`connect ${i + 1}: ${(error as Error).message}`)
      }
      const length = historyLength(subscriber.subscribedPayload ?? '')
      if (length !== params.historyMessages) throw new Failure(`connect ${i + 1}: subscribed with ${length} messages, not ${params.historyMessages}`)
      if (i >= params.warmupConnects) times.push(subscriber.readyAt - subscriber.requestedAt)
    }
    await mark('window-end')
    const sorted = Float64Array.from(times).sort()
    return {
      ok: true,
      figures: { p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) },
      counts: { connects: times.length, historyMessages: params.historyMessages },
      notes: []
    }
  } finally {
    publisher.close()
    for (const subscriber of subscribers) subscriber.destroy()
  }
}

function historyLength (payload: string): number {
  const frame = (payload.startsWith('42') ? (JSON.parse(payload.slice(2)) as unknown[])[1] : JSON.parse(payload)) as { history?: unknown[] }
  return frame.history?.length ?? -1
}

async function until (condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs
  while (!condition()) {
    if (performance.now() > deadline) return false
    await sleep(5)
  }
  return true
}

async function main (): Promise<LoadResult> {
  const system = await access()
  switch (plan.scenario.kind) {
    case 'fanout':
    case 'publish-heavy':
    case 'scale':
      return await throughput(system)
    case 'latency':
      return await latency(system)
    case 'idle-memory':
      return await idleMemory(system)
    case 'connect-history':
      return await connectHistory(system)
  }
}

let result: LoadResult
try {
  result = await main()
} catch (error) {
  result = { ok: false, reason: error instanceof Failure ? error.message : String((error as Error).stack ?? error), figures: {}, counts: {}, notes: [] }
}
process.stdout.write(JSON.stringify({ result } satisfies LoadOutput) + '\n', () => { process.exit(0) })
