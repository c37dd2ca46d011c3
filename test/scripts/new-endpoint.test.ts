import { execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { tempDir, type TestContext } from '../helpers/app.js'

/**
 * `npm run new:endpoint` in a copy of the project: what it writes passes typecheck, lint
 * and its own test, and a name it refuses changes nothing.
 */

const root = fileURLToPath(new URL('../..', import.meta.url))
/** Never copied: installed, built or written by runs. */
const notCopied = new Set(['.git', 'node_modules', 'dist', 'data', '.tap', 'coverage', 'test-output'])
const commandTimeoutMs = 150_000

interface Run { code: number | null, stdout: string, stderr: string }

/** The environment of a command in the copy: without the variables of the tap run around us. */
function cleanEnv (): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(TAP|_TAPJS|TS_NODE_)/.test(key) && key !== 'NODE_OPTIONS'))
}

async function run (command: string, args: string[], cwd: string): Promise<Run> {
  return await new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: cleanEnv(), timeout: commandTimeoutMs })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    child.once('error', reject)
    child.once('close', (code) => { resolve({ code, stdout, stderr }) })
  })
}

/** The project's files as git sees them (tracked and new, not ignored); every file but the ignored folders without git. */
function projectFiles (): string[] {
  try {
    const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' })
    return listed.split('\0').filter((file) => file !== '' && existsSync(join(root, file)))
  } catch {
    return readdirSync(root, { recursive: true, encoding: 'utf8' })
      .filter((file) => !notCopied.has(file.split('/')[0] ?? '') && statSync(join(root, file)).isFile())
  }
}

/** A copy of the project in a temporary directory, sharing this one's node_modules. */
function copyProject (t: TestContext): string {
  const dir = tempDir(t, 'canopy-generator-')
  for (const file of projectFiles()) {
    mkdirSync(dirname(join(dir, file)), { recursive: true })
    copyFileSync(join(root, file), join(dir, file))
  }
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir')
  return dir
}

/** Every file of the copy (outside node_modules) with a hash of its content. */
function snapshot (dir: string): Record<string, string> {
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((file) => !notCopied.has(file.split('/')[0] ?? '') && statSync(join(dir, file)).isFile())
    .sort()
  return Object.fromEntries(files.map((file) => [file, createHash('sha1').update(readFileSync(join(dir, file))).digest('hex')]))
}

/** The generator itself, without npm's own lines around its output. */
async function generate (dir: string, ...args: string[]): Promise<Run> {
  return await run(process.execPath, ['--import', 'tsx', 'scripts/new-endpoint.ts', ...args], dir)
}

function tool (dir: string, name: string): string {
  return join(dir, 'node_modules', '.bin', name)
}

const importMarker = '// endpoint imports: `npm run new:endpoint -- <name>` adds its plugin here'
const registrationMarker = '  // endpoint registrations: `npm run new:endpoint -- <name>` adds its plugin here'

t.test('new:endpoint in a copy of the project', async (t) => {
  const dir = copyProject(t)
  const app = join(dir, 'server', 'app.ts')

  await t.test('refuses bad names with one line and exit code 1, and changes nothing', async (t) => {
    const before = snapshot(dir)
    const cases: Array<[string, RegExp]> = [
      ['Bad Name', /"Bad Name" is not a valid endpoint name.*lower-case letters/],
      ['../x', /"\.\.\/x" is not a valid endpoint name/],
      ['chat', /\/chat is reserved/],
      ['api', /\/api is reserved/],
      ['', /empty/]
    ]
    const results = await Promise.all(cases.map(async ([name]) => await generate(dir, name)))
    cases.forEach(([name, message], i) => {
      const result = results[i] as Run
      t.equal(result.code, 1, `${JSON.stringify(name)}: exit code 1`, { stderr: result.stderr })
      t.match(result.stderr, message, `${JSON.stringify(name)}: says why`)
      t.match(result.stderr, /^new:endpoint: [^\n]+\n$/, `${JSON.stringify(name)}: in one line`)
      t.equal(result.stdout, '', `${JSON.stringify(name)}: prints nothing else`)
    })
    t.same(snapshot(dir), before, 'no file is created or changed')
  })

  await t.test('creates the plugin and its test, and registers it in the app factory', async (t) => {
    const before = readFileSync(app, 'utf8')
    const result = await run('npm', ['run', '--silent', 'new:endpoint', '--', 'live-feed'], dir)
    t.equal(result.code, 0, 'exit code 0', { stderr: result.stderr })
    t.match(result.stdout, /created plugins\/live-feed-endpoint\.ts\ncreated test\/plugins\/live-feed-endpoint\.test\.ts\n/, 'says what it created')

    const plugin = readFileSync(join(dir, 'plugins', 'live-feed-endpoint.ts'), 'utf8')
    t.match(plugin, "path: '/live-feed'")
    t.match(plugin, 'addEndpoint<LiveFeedState, LiveFeedFrame>(fastify, {', 'typed by its state and its frames')
    t.match(plugin, "import { showsItsTicket } from '../src/tickets.js'")
    t.match(plugin, "{ name: 'live-feed-endpoint', fastify: '5.x', dependencies: ['config', 'websocket', 'session'] }")
    t.ok(existsSync(join(dir, 'test', 'plugins', 'live-feed-endpoint.test.ts')), 'the test exists')
    t.equal(readFileSync(app, 'utf8'), before
      .replace(importMarker, `${importMarker}\nimport liveFeedEndpoint from '../plugins/live-feed-endpoint.js'`)
      .replace(registrationMarker, `${registrationMarker}\n  await app.register(liveFeedEndpoint)`),
    'server/app.ts imports and registers it right after the markers, and nothing else changed')
  })

  await t.test('refuses a name that now exists, and changes nothing', async (t) => {
    const before = snapshot(dir)
    const result = await generate(dir, 'live-feed')
    t.equal(result.code, 1)
    t.match(result.stderr, /^new:endpoint: plugins\/live-feed-endpoint\.ts already exists[^\n]*\n$/)
    t.same(snapshot(dir), before)
  })

  await t.test('the generated code passes typecheck, lint and its own test', async (t) => {
    const generated = ['plugins/live-feed-endpoint.ts', 'test/plugins/live-feed-endpoint.test.ts', 'server/app.ts']
    const [tsc, eslint, tap] = await Promise.all([
      run(process.execPath, [tool(dir, 'tsc'), '-p', 'tsconfig.json'], dir),
      run(process.execPath, [tool(dir, 'eslint'), ...generated], dir),
      run(process.execPath, [tool(dir, 'tap'), 'test/plugins/live-feed-endpoint.test.ts'], dir)
    ])
    t.equal(tsc.code, 0, 'tsc -p tsconfig.json', { output: tsc.stdout + tsc.stderr })
    t.equal(eslint.code, 0, 'eslint', { output: eslint.stdout + eslint.stderr })
    t.equal(tap.code, 0, 'tap test/plugins/live-feed-endpoint.test.ts', { output: tap.stdout + tap.stderr })
  })
})
