import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

/**
 * What the bench reads from /proc (Linux): the CPU time of processes, the machine's CPU
 * counters, and resident memory.
 */

/** Clock ticks per second, the unit of /proc CPU times. */
export const clockTicksPerSecond = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

interface ProcStat {
  ppid: number
  /** utime + stime, in seconds. */
  cpuSeconds: number
  /** cutime + cstime: children waited for, in seconds. */
  childrenCpuSeconds: number
}

export function readProcStat (pid: number): ProcStat | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // The command name is in parentheses and may hold spaces: the fields follow the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  const field = (n: number): number => Number(fields[n - 3])
  return {
    ppid: field(4),
    cpuSeconds: (field(14) + field(15)) / clockTicksPerSecond,
    childrenCpuSeconds: (field(16) + field(17)) / clockTicksPerSecond
  }
}

/** utime + stime of one process (all its threads), in seconds; 0 once it is gone. */
export function processCpuSeconds (pid: number): number {
  return readProcStat(pid)?.cpuSeconds ?? 0
}

export function childrenOf (ppid: number): number[] {
  const children: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const pid = Number(entry)
    if (readProcStat(pid)?.ppid === ppid) children.push(pid)
  }
  return children
}

/**
 * The CPU time of a Postgres server: the postmaster, every live child (backends, WAL
 * writer, checkpointer…), and the children that already exited (counted in the
 * postmaster's cutime/cstime once it reaped them).
 */
export function postgresCpuSeconds (postmasterPid: number): number {
  const postmaster = readProcStat(postmasterPid)
  if (postmaster === undefined) return 0
  let total = postmaster.cpuSeconds + postmaster.childrenCpuSeconds
  for (const child of childrenOf(postmasterPid)) total += processCpuSeconds(child)
  return total
}

export function commandName (pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return undefined
  }
}

/** The whole machine's CPU counters since boot, in seconds summed over every core. */
export interface MachineCpu {
  busySeconds: number
  totalSeconds: number
}

export function machineCpu (): MachineCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith('cpu ')) ?? ''
  // user nice system idle iowait irq softirq steal guest guest_nice: guest time is already in user.
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] =
    line.trim().split(/\s+/).slice(1).map(Number)
  const busy = user + nice + system + irq + softirq + steal
  return { busySeconds: busy / clockTicksPerSecond, totalSeconds: (busy + idle + iowait) / clockTicksPerSecond }
}

/** VmRSS of a process, in bytes. */
export function residentBytes (pid: number): number | undefined {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match?.[1] === undefined ? undefined : Number(match[1]) * 1024
  } catch {
    return undefined
  }
}
