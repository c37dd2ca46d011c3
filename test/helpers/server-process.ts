import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { tempDir, type TestContext } from './app.js'
import { sessionCookie } from './http.js'

/** One line of the server's log, parsed, with the text it was. */
export interface LogLine {
  level: number
  msg?: string
  reqId?: string
  req?: { method?: string, url?: string }
  res?: { statusCode?: number }
  raw: string
  [field: string]: unknown
}

/**
 * A command of the repository as npm runs it (from source, through tsx): by default the
 * server entry point, as `npm start`; src/cli/migrate.ts is `npm run db:migrate`,
 * src/cli/admin.ts with its `args` `npm run admin -- …`. Its log is
 * read line by line as it writes it: tests wait for a line to appear, never for time to pass.
 * A line that is not JSON is kept apart, so a test can say the log is JSON throughout.
 * Killed when the test ends, if it has not exited by then.
 */
export class ServerProcess {
  readonly child: ChildProcess
  readonly lines: LogLine[] = []
  /** Lines of stdout that are not JSON objects. */
  readonly notJson: string[] = []
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  private stdoutText = ''
  private stderrText = ''
  private readonly waiters: Array<() => void> = []
  private ended = false

  constructor (t: TestContext, env: Record<string, string>, options: { script?: string, args?: string[] } = {}) {
    this.child = spawn(process.execPath, ['--import', 'tsx', options.script ?? 'server/server.ts', ...options.args ?? []], {
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', PORT: '0', KEEPALIVE_INTERVAL: '0', DATA_DIR: tempDir(t), ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { this.stderrText += chunk })
    const { stdout } = this.child
    if (stdout === null) throw new Error('no stdout')
    stdout.setEncoding('utf8').on('data', (chunk: string) => { this.stdoutText += chunk })
    createInterface({ input: stdout }).on('line', (raw) => {
      try {
        const parsed = JSON.parse(raw) as unknown
        if (typeof parsed !== 'object' || parsed === null) throw new Error('not an object')
        this.lines.push({ ...parsed as Omit<LogLine, 'raw'>, raw } as LogLine)
      } catch {
        this.notJson.push(raw)
      }
      this.wake()
    })
    // 'close', not 'exit': by then every line it wrote has been read.
    this.exited = once(this.child, 'close').then(([code, signal]) => {
      this.ended = true
      this.wake()
      return { code: code as number | null, signal: signal as NodeJS.Signals | null }
    })
    t.teardown(async () => {
      if (!this.ended) this.child.kill('SIGKILL')
      await this.exited
    })
  }

  /** All it wrote on stdout, as it wrote it. */
  get stdout (): string {
    return this.stdoutText
  }

  get stderr (): string {
    return this.stderrText
  }

  /** The first line from index `from` on that matches; throws if the process ends first. */
  async waitFor (matches: (line: LogLine) => boolean, from = 0): Promise<LogLine> {
    return this.lines[await this.waitForIndex(matches, from)] as LogLine
  }

  /** The index in `lines` of the first line from `from` on that matches; throws if the process ends first. */
  async waitForIndex (matches: (line: LogLine) => boolean, from = 0): Promise<number> {
    for (;;) {
      const index = this.lines.findIndex((line, i) => i >= from && matches(line))
      if (index !== -1) return index
      if (this.ended) throw new Error(`the server exited without that line; stderr: ${this.stderrText}`)
      await new Promise<void>((resolve) => { this.waiters.push(resolve) })
    }
  }

  /** The server's http://127.0.0.1:port, once it says it listens. */
  async listening (): Promise<string> {
    const line = await this.waitFor((line) => /Server listening at http:\/\/127\.0\.0\.1:\d+/.test(line.msg ?? ''))
    return /http:\/\/127\.0\.0\.1:\d+/.exec(line.msg ?? '')?.[0] ?? ''
  }

  private wake (): void {
    for (const wake of this.waiters.splice(0)) wake()
  }
}

/** Registers a user over HTTP: its session cookie and the session's wsTicket. */
export async function registerOver (baseUrl: string, username: string, password = 'correct horse'): Promise<{ cookie: string, wsTicket: string }> {
  const registered = await fetch(`${baseUrl}/api/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) })
  if (registered.status !== 201) throw new Error(`register ${username}: ${registered.status}`)
  const cookie = sessionCookie(registered)
  const { wsTicket } = await (await fetch(`${baseUrl}/api/me`, { headers: { cookie } })).json() as { wsTicket: string }
  return { cookie, wsTicket }
}
