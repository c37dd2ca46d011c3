/**
 * The scenarios of issue 10, their sizes in full and quick mode, and the figures each one
 * reports. Shared by the orchestrator (run.ts) and the load generator (load.ts).
 */

/** The three systems, as columns of the table. */
export type Column = 'limit' | 'peer' | 'canopy'
export const columns: readonly Column[] = ['limit', 'peer', 'canopy']

/** The server programs: the peer is Socket.IO alone on one instance, with the Postgres adapter on two. */
export type SystemName = 'limit' | 'socketio' | 'socketio-pg' | 'canopy'

export type ScenarioKind = 'fanout' | 'publish-heavy' | 'latency' | 'idle-memory' | 'connect-history'

export interface ScenarioParams {
  /** Subscriber connections in all, split round-robin over the instances. */
  subscribers: number
  /** Topics the subscribers are spread over (each topic gets subscribers / topics). */
  topics: number
  /** Publisher connections, split round-robin over the instances (fan-out: all on the first). */
  publishers: number
  /** Unacknowledged publishes each publisher may have outstanding (closed loop). */
  window: number
  /** Open loop: publishes per second in all (latency); 0 means closed loop at full speed. */
  ratePerSecond: number
  warmupMs: number
  measureMs: number
  /** After publishing stops: how long every outstanding ack and delivery may take to arrive. */
  drainMs: number
  /** connect-history: messages in the topic before the measured connects. */
  historyMessages: number
  /** connect-history: measured connects, after `warmupConnects` unmeasured ones (idle-memory: opened and closed before the baseline). */
  connects: number
  warmupConnects: number
  /** Bytes of each message text (including its timestamp marker). */
  textBytes: number
}

export interface FigureSpec {
  key: string
  label: string
  unit: 'msg/s' | 'ms' | 'KiB' | 'cores' | 'count' | 'per cpu-s'
  /** Which direction is better; 'none' for figures that are context (CPU use, counts). */
  better: 'higher' | 'lower' | 'none'
}

export interface Scenario {
  id: string
  title: string
  kind: ScenarioKind
  instances: 1 | 2
  params: ScenarioParams
  /** The columns that take part; the limit has no cross-instance path, so it sits out two-instance scenarios. */
  columns: readonly Column[]
  figures: readonly FigureSpec[]
}

export function systemOf (column: Column, instances: 1 | 2): SystemName {
  if (column === 'limit') return 'limit'
  if (column === 'canopy') return 'canopy'
  return instances === 2 ? 'socketio-pg' : 'socketio'
}

/** Whether a system's work includes Postgres: then its CPU counts as the system's own. */
export function usesPostgres (system: SystemName): boolean {
  return system === 'canopy' || system === 'socketio-pg'
}

const cpuFigures: FigureSpec[] = [
  { key: 'serverCpu', label: 'server CPU', unit: 'cores', better: 'none' },
  { key: 'postgresCpu', label: 'Postgres CPU', unit: 'cores', better: 'none' },
  { key: 'loadCpu', label: 'load generator CPU', unit: 'cores', better: 'none' }
]

const fanoutFigures: FigureSpec[] = [
  { key: 'publishedPerSecond', label: 'published, acked', unit: 'msg/s', better: 'higher' },
  { key: 'deliveredPerSecond', label: 'delivered', unit: 'msg/s', better: 'higher' },
  { key: 'deliveriesPerCpuSecond', label: 'deliveries per server CPU-s', unit: 'per cpu-s', better: 'higher' },
  { key: 'behindAtWindowEnd', label: 'deliveries owed at window end', unit: 'count', better: 'none' },
  ...cpuFigures
]

const publishHeavyFigures: FigureSpec[] = [
  { key: 'publishedPerSecond', label: 'acked', unit: 'msg/s', better: 'higher' },
  { key: 'deliveredPerSecond', label: 'delivered', unit: 'msg/s', better: 'higher' },
  { key: 'deliveriesPerCpuSecond', label: 'deliveries per server CPU-s', unit: 'per cpu-s', better: 'higher' },
  { key: 'behindAtWindowEnd', label: 'deliveries owed at window end', unit: 'count', better: 'none' },
  ...cpuFigures
]

const latencyFigures: FigureSpec[] = [
  { key: 'p50Ms', label: 'send→receive p50', unit: 'ms', better: 'lower' },
  { key: 'p99Ms', label: 'send→receive p99', unit: 'ms', better: 'lower' },
  { key: 'maxMs', label: 'send→receive max', unit: 'ms', better: 'lower' },
  ...cpuFigures
]

const memoryFigures: FigureSpec[] = [
  { key: 'heapPerConnectionKiB', label: 'heap per connection', unit: 'KiB', better: 'lower' },
  { key: 'rssPerConnectionKiB', label: 'RSS per connection', unit: 'KiB', better: 'lower' }
]

const connectFigures: FigureSpec[] = [
  { key: 'p50Ms', label: 'connect→subscribed p50', unit: 'ms', better: 'lower' },
  { key: 'p99Ms', label: 'connect→subscribed p99', unit: 'ms', better: 'lower' },
  { key: 'cpuMsPerConnect', label: 'server CPU per connect', unit: 'ms', better: 'lower' },
  ...cpuFigures
]

const base: ScenarioParams = {
  subscribers: 0,
  topics: 1,
  publishers: 1,
  window: 32,
  ratePerSecond: 0,
  warmupMs: 1500,
  measureMs: 4000,
  drainMs: 3000,
  historyMessages: 0,
  connects: 0,
  warmupConnects: 0,
  textBytes: 64
}

export function scenarios (quick: boolean): Scenario[] {
  const timing = quick ? { warmupMs: 200, measureMs: 800, drainMs: 1500 } : { warmupMs: 1500, measureMs: 4000, drainMs: 3000 }
  const all: readonly Column[] = columns
  const peerAndCanopy: readonly Column[] = ['peer', 'canopy']
  const fanout = (subscribers: number): ScenarioParams => ({ ...base, ...timing, subscribers })
  const publishHeavy: ScenarioParams = { ...base, ...timing, topics: quick ? 10 : 50, subscribers: quick ? 40 : 200, publishers: quick ? 4 : 10 }
  const latency: ScenarioParams = { ...base, ...timing, warmupMs: quick ? 200 : 500, measureMs: quick ? 800 : 4000, subscribers: quick ? 20 : 100, ratePerSecond: 200 }
  const idle: ScenarioParams = { ...base, subscribers: quick ? 500 : 5000, warmupConnects: quick ? 0 : 50 }
  const connect: ScenarioParams = { ...base, ...timing, historyMessages: 30, connects: quick ? 40 : 300, warmupConnects: quick ? 5 : 30 }
  const publisher = (p: ScenarioParams): string => `${p.publishers} publisher${p.publishers === 1 ? '' : 's'}, window ${p.window}`
  return [
    {
      id: 'fanout-100',
      title: `fan-out, one topic, ${quick ? 20 : 100} subscribers, ${publisher(base)}, one instance`,
      kind: 'fanout',
      instances: 1,
      params: fanout(quick ? 20 : 100),
      columns: all,
      figures: fanoutFigures
    },
    {
      id: 'fanout-1000',
      title: `fan-out, one topic, ${quick ? 100 : 1000} subscribers, ${publisher(base)}, one instance`,
      kind: 'fanout',
      instances: 1,
      params: fanout(quick ? 100 : 1000),
      columns: all,
      figures: fanoutFigures
    },
    {
      id: 'fanout-100-2i',
      title: `fan-out, one topic, ${quick ? 20 : 100} subscribers split over two instances, ${publisher(base)} on the first`,
      kind: 'fanout',
      instances: 2,
      params: fanout(quick ? 20 : 100),
      columns: peerAndCanopy,
      figures: fanoutFigures
    },
    {
      id: 'publish-heavy-2i',
      title: `publish-heavy, ${publishHeavy.topics} topics × ${publishHeavy.subscribers / publishHeavy.topics} subscribers, ` +
        `${publisher(publishHeavy)} on random topics, all split over two instances`,
      kind: 'publish-heavy',
      instances: 2,
      params: publishHeavy,
      columns: peerAndCanopy,
      figures: publishHeavyFigures
    },
    {
      id: 'latency-1i',
      title: `latency, ${latency.subscribers} subscribers, ${latency.ratePerSecond} msgs/s open loop, one instance`,
      kind: 'latency',
      instances: 1,
      params: latency,
      columns: all,
      figures: latencyFigures
    },
    {
      id: 'latency-2i',
      title: `latency, ${latency.subscribers} subscribers split over two instances, ${latency.ratePerSecond} msgs/s open loop`,
      kind: 'latency',
      instances: 2,
      params: latency,
      columns: peerAndCanopy,
      figures: latencyFigures
    },
    {
      id: 'idle-memory',
      title: `idle memory at ${idle.subscribers} open connections, one instance`,
      kind: 'idle-memory',
      instances: 1,
      params: idle,
      columns: all,
      figures: memoryFigures
    },
    {
      id: 'connect-history',
      title: `connect-and-history: upgrade request → subscribed with ${connect.historyMessages} messages, ${connect.connects} connects one after another`,
      kind: 'connect-history',
      instances: 1,
      params: connect,
      columns: all,
      figures: connectFigures
    }
  ]
}
