/**
 * The scenarios of issue 10, their sizes in full and quick mode, and the figures each one
 * reports. Shared by the orchestrator (run.ts) and the load generator (load.ts).
 */

/** The three systems, as columns of the table. */
export type Column = 'limit' | 'peer' | 'canopy'
export const columns: readonly Column[] = ['limit', 'peer', 'canopy']

/** The server programs: the peer is Socket.IO alone on one instance, with the Postgres adapter on two. */
export type SystemName = 'limit' | 'socketio' | 'socketio-pg' | 'canopy'

export type ScenarioKind = 'fanout' | 'publish-heavy' | 'latency' | 'idle-memory' | 'connect-history' | 'scale'

/** Server instances a scenario runs on, all on the one Postgres. */
export type Instances = 1 | 2 | 4

export interface ScenarioParams {
  /** Subscriber connections in all, split round-robin over the instances (scale: each on its topic's instance). */
  subscribers: number
  /** Topics the subscribers are spread over (each topic gets subscribers / topics); scale: split over the instances. */
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
  unit: 'msg/s' | 'per s' | 'ms' | 'KiB' | 'cores' | '%' | 'count' | 'per cpu-s'
  /** Which direction is better; 'none' for figures that are context (CPU use, counts). */
  better: 'higher' | 'lower' | 'none'
}

export interface Scenario {
  id: string
  title: string
  kind: ScenarioKind
  instances: Instances
  params: ScenarioParams
  /**
   * The columns that take part: the limit has no cross-instance path, so it sits out the
   * two-instance scenarios; the scale scenario measures Canopy's own bus, so only Canopy runs it.
   */
  columns: readonly Column[]
  figures: readonly FigureSpec[]
}

export function systemOf (column: Column, instances: Instances): SystemName {
  if (column === 'limit') return 'limit'
  if (column === 'canopy') return 'canopy'
  return instances === 1 ? 'socketio' : 'socketio-pg'
}

/**
 * Scale: the topics instance `instance` (from 0) serves, its share of params.topics. The
 * name tells the instance, so that the messages table tells which instance committed a row.
 */
export function servedTopics (params: ScenarioParams, instance: number, instances: number): string[] {
  const count = Math.floor(params.topics / instances) + (instance < params.topics % instances ? 1 : 0)
  return Array.from({ length: count }, (_, j) => `i${instance}.t${j}`)
}

/** Scale: the instance that serves a topic named by servedTopics; undefined for any other name. */
export function servingInstance (topic: string): number | undefined {
  const match = /^i(\d+)\.t\d+$/.exec(topic)
  return match === null ? undefined : Number(match[1])
}

/** Whether a system's work includes Postgres: then its CPU counts as the system's own. */
export function usesPostgres (system: SystemName): boolean {
  return system === 'canopy' || system === 'socketio-pg'
}

const cpuFigures: readonly FigureSpec[] = [
  { key: 'serverCpu', label: 'server CPU', unit: 'cores', better: 'none' },
  { key: 'postgresCpu', label: 'Postgres CPU', unit: 'cores', better: 'none' },
  { key: 'loadCpu', label: 'load generator CPU', unit: 'cores', better: 'none' }
]

/** Fan-out and publish-heavy report the same figures; only the label of the acked publishes differs. */
function throughputFigures (publishedLabel: string): readonly FigureSpec[] {
  return [
    { key: 'publishedPerSecond', label: publishedLabel, unit: 'msg/s', better: 'higher' },
    { key: 'deliveredPerSecond', label: 'delivered', unit: 'msg/s', better: 'higher' },
    { key: 'deliveriesPerCpuSecond', label: 'deliveries per server CPU-s', unit: 'per cpu-s', better: 'higher' },
    { key: 'behindAtWindowEnd', label: 'deliveries owed at window end', unit: 'count', better: 'none' },
    ...cpuFigures
  ]
}

/** One figure per instance, instance 1 first. */
function perInstance (count: number, figure: (n: number) => FigureSpec): FigureSpec[] {
  return Array.from({ length: count }, (_, i) => figure(i + 1))
}

/**
 * Scale: while every instance publishes, what the bus carries and what each instance spends;
 * then the control, where only instance 1 publishes: every other instance hears nothing but
 * NOTIFYs for topics it does not serve, and its CPU over them is what each of them costs.
 */
const scaleFigures: readonly FigureSpec[] = [
  { key: 'publishedPerSecond', label: 'acked, every instance publishing', unit: 'msg/s', better: 'higher' },
  { key: 'deliveredPerSecond', label: 'delivered', unit: 'msg/s', better: 'higher' },
  { key: 'deliveriesPerCpuSecond', label: 'deliveries per server CPU-s', unit: 'per cpu-s', better: 'higher' },
  { key: 'commitsPerSecond', label: 'commits with NOTIFY', unit: 'per s', better: 'none' },
  { key: 'messagesPerCommit', label: 'messages per commit', unit: 'count', better: 'none' },
  { key: 'notificationsPerSecond', label: 'NOTIFYs (one per topic per commit)', unit: 'per s', better: 'none' },
  ...perInstance(4, (n) => ({ key: `instance${n}Cpu`, label: `instance ${n} CPU`, unit: 'cores', better: 'none' })),
  { key: 'foreignSharePercent', label: 'instance CPU on others\' NOTIFYs (est.)', unit: '%', better: 'lower' },
  ...cpuFigures,
  { key: 'controlPublishedPerSecond', label: 'control: acked, instance 1 alone', unit: 'msg/s', better: 'none' },
  { key: 'controlNotificationsPerSecond', label: 'control: NOTIFYs', unit: 'per s', better: 'none' },
  ...perInstance(3, (n) => ({ key: `instance${n + 1}CpuMsPer1000Foreign`, label: `control: instance ${n + 1} CPU per 1000 NOTIFYs`, unit: 'ms', better: 'lower' })),
  { key: 'cpuMsPer1000ForeignMessages', label: 'control: the same per 1000 messages', unit: 'ms', better: 'lower' },
  { key: 'controlPostgresCpu', label: 'control: Postgres CPU', unit: 'cores', better: 'none' }
]

const figuresOf: Record<ScenarioKind, readonly FigureSpec[]> = {
  fanout: throughputFigures('published, acked'),
  'publish-heavy': throughputFigures('acked'),
  latency: [
    { key: 'p50Ms', label: 'send→receive p50', unit: 'ms', better: 'lower' },
    { key: 'p99Ms', label: 'send→receive p99', unit: 'ms', better: 'lower' },
    { key: 'maxMs', label: 'send→receive max', unit: 'ms', better: 'lower' },
    ...cpuFigures
  ],
  'idle-memory': [
    { key: 'heapPerConnectionKiB', label: 'heap per connection', unit: 'KiB', better: 'lower' },
    { key: 'rssPerConnectionKiB', label: 'RSS per connection', unit: 'KiB', better: 'lower' }
  ],
  'connect-history': [
    { key: 'p50Ms', label: 'connect→subscribed p50', unit: 'ms', better: 'lower' },
    { key: 'p99Ms', label: 'connect→subscribed p99', unit: 'ms', better: 'lower' },
    { key: 'cpuMsPerConnect', label: 'server CPU per connect', unit: 'ms', better: 'lower' },
    ...cpuFigures
  ],
  scale: scaleFigures
}

/** Where every scenario starts from: one topic, one publisher, the full run's timing. */
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

/** The quick run's shorter windows, for the scenarios that have a measured window. */
const quickTiming: Partial<ScenarioParams> = { warmupMs: 200, measureMs: 800, drainMs: 1500 }

function publisher (p: ScenarioParams): string {
  return `${p.publishers} publisher${p.publishers === 1 ? '' : 's'}, window ${p.window}`
}

const titles: Record<ScenarioKind, (p: ScenarioParams, instances: Instances) => string> = {
  fanout: (p, instances) => instances === 1
    ? `fan-out, one topic, ${p.subscribers} subscribers, ${publisher(p)}, one instance`
    : `fan-out, one topic, ${p.subscribers} subscribers split over two instances, ${publisher(p)} on the first`,
  'publish-heavy': (p) => `publish-heavy, ${p.topics} topics × ${p.subscribers / p.topics} subscribers, ` +
    `${publisher(p)} on random topics, all split over two instances`,
  latency: (p, instances) => instances === 1
    ? `latency, ${p.subscribers} subscribers, ${p.ratePerSecond} msgs/s open loop, one instance`
    : `latency, ${p.subscribers} subscribers split over two instances, ${p.ratePerSecond} msgs/s open loop`,
  'idle-memory': (p) => `idle memory at ${p.subscribers} open connections, one instance`,
  'connect-history': (p) => `connect-and-history: upgrade request → subscribed with ${p.historyMessages} messages, ${p.connects} connects one after another`,
  scale: (p, instances) => `scale, ${instances} instances on one Postgres, each serving its own ${p.topics / instances} topics × ` +
    `${p.subscribers / p.topics} subscribers with ${p.publishers / instances} publishers (window ${p.window}); control: only the first publishes`
}

/** A scenario once: what differs from `base` in the full run, and what the quick run changes on top. */
interface ScenarioDefinition {
  id: string
  kind: ScenarioKind
  instances: Instances
  full: Partial<ScenarioParams>
  /** What the quick run changes; undefined: the quick run leaves the scenario out. */
  quick: Partial<ScenarioParams> | undefined
}

const fanout100: ScenarioDefinition = { id: 'fanout-100', kind: 'fanout', instances: 1, full: { subscribers: 100 }, quick: { ...quickTiming, subscribers: 20 } }
const latency1i: ScenarioDefinition = {
  id: 'latency-1i',
  kind: 'latency',
  instances: 1,
  full: { warmupMs: 500, subscribers: 100, ratePerSecond: 200 },
  quick: { ...quickTiming, subscribers: 20 }
}

/** The same scenario with its connections split over two instances. */
function acrossTwoInstances (scenario: ScenarioDefinition, id: string): ScenarioDefinition {
  return { ...scenario, id, instances: 2 }
}

const definitions: readonly ScenarioDefinition[] = [
  fanout100,
  { id: 'fanout-1000', kind: 'fanout', instances: 1, full: { subscribers: 1000 }, quick: { ...quickTiming, subscribers: 100 } },
  acrossTwoInstances(fanout100, 'fanout-100-2i'),
  {
    id: 'publish-heavy-2i',
    kind: 'publish-heavy',
    instances: 2,
    full: { topics: 50, subscribers: 200, publishers: 10 },
    quick: { ...quickTiming, topics: 10, subscribers: 40, publishers: 4 }
  },
  latency1i,
  acrossTwoInstances(latency1i, 'latency-2i'),
  // No measured window: it measures memory once every connection is open.
  { id: 'idle-memory', kind: 'idle-memory', instances: 1, full: { subscribers: 5000, warmupConnects: 50 }, quick: { subscribers: 500, warmupConnects: 0 } },
  {
    id: 'connect-history',
    kind: 'connect-history',
    instances: 1,
    full: { historyMessages: 30, connects: 300, warmupConnects: 30 },
    quick: { ...quickTiming, connects: 200, warmupConnects: 20 }
  },
  {
    id: 'scale-4i',
    kind: 'scale',
    instances: 4,
    // Longer windows: a quiet instance spends only some 25 ticks of /proc's 10 ms in the control.
    full: { topics: 100, subscribers: 200, publishers: 12, measureMs: 6000 },
    // Starting four instances takes longer than the quick run may grow by (CI's bench:quick step).
    quick: undefined
  }
]

function columnsOf (kind: ScenarioKind, instances: Instances): readonly Column[] {
  if (kind === 'scale') return ['canopy']
  return instances === 1 ? columns : columns.filter((column) => column !== 'limit')
}

export function scenarios (quick: boolean): Scenario[] {
  return definitions.filter((definition) => !quick || definition.quick !== undefined).map(({ id, kind, instances, full, quick: quickChanges }) => {
    const params: ScenarioParams = { ...base, ...full, ...(quick ? quickChanges : {}) }
    return { id, title: titles[kind](params, instances), kind, instances, params, columns: columnsOf(kind, instances), figures: figuresOf[kind] }
  })
}
