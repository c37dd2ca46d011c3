import { execFile, spawn } from 'node:child_process'
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { WebSocket } from 'ws'
import { CanopyClient } from '../../client/src/index.js'
import { buildTestApp, register, tempDir, uniqueName } from '../helpers/app.js'
import { listen } from '../helpers/http.js'

/**
 * The package as a user gets it: `npm pack ./client`, installed (offline: it has no
 * dependencies) into a project of its own, which type-checks a TypeScript program against
 * the shipped types, runs a Node program that publishes to a running server and is told its
 * own message, and runs the bot docs/client.md opens with. The project borrows only `ws`
 * and the type packages from this repository's node_modules (linked, not installed).
 */

const root = fileURLToPath(new URL('../../', import.meta.url))
const run = promisify(execFile)

/** A program typed against the package: wrong uses must be errors, so the types are not `any`. */
const typedProgram = `
import { WebSocket } from 'ws'
import { CanopyClient, CanopyError, sessionLogin, storageOutbox, type Message, type OutboxStore, type StateChange } from '@canopy/client'

export async function bot (url: string, store: OutboxStore): Promise<number> {
  const auth = await sessionLogin(url, { username: 'bot', password: 'a long password' })
  const client = new CanopyClient({ url, auth, WebSocket, outbox: store, backoff: { firstDelayMs: 100, maxDelayMs: 1000 } })
  client.on('message', (message: Message) => { console.log(message.topic, message.id, message.author, message.text) })
  client.on('state', (change: StateChange) => { if (change.state === 'closed' && !change.willReconnect) console.log(change.code, change.reason) })
  client.on('error', (frame) => { console.log(frame.code, frame.retryAfterMs ?? 0) })
  await client.subscribe('general', { since: 10 })
  const ack: { id: number, at: string } = await client.publish('general', { text: 'hi', replyTo: 1 }, { ref: 'r1' })
  try {
    await client.publish('general', 'again')
  } catch (error) {
    if (error instanceof CanopyError) console.log(error.code, error.ref)
  }
  new CanopyClient({ url, auth: { kind: 'key', key: 'k' }, WebSocket }).close()
  new CanopyClient({ url, auth: { kind: 'token', token: async () => 'a.b.c' }, WebSocket }).close()
  storageOutbox({ getItem: () => null, setItem: () => {} }).put(client.pending()[0] ?? { type: 'publish', topic: 't', ref: 'r' })
  // @ts-expect-error: no such event
  client.on('no-such-event', () => {})
  // @ts-expect-error: a message's id is a number
  client.on('message', (message) => { const text: string = message.id; console.log(text) })
  // @ts-expect-error: no such kind of auth
  new CanopyClient({ url, auth: { kind: 'password' }, WebSocket })
  // @ts-expect-error: publish resolves with the ack, not a string
  const wrong: string = await client.publish('general', 'hi')
  console.log(wrong)
  client.close()
  return ack.id
}
`

/** Publishes with the packed client and waits to be told its own message. */
const roundTrip = `
import { WebSocket } from 'ws'
import { CanopyClient, sessionLogin } from '@canopy/client'

const url = process.env.CANOPY_URL
const auth = await sessionLogin(url, { username: process.env.BOT_NAME, password: process.env.BOT_PASSWORD })
const client = new CanopyClient({ url, auth, WebSocket })
const told = new Promise((resolve) => { client.on('message', (message) => { if (message.text === 'from the packed client') resolve(message) }) })
await client.subscribe('packed')
const ack = await client.publish('packed', 'from the packed client')
const message = await told
client.close()
console.log(JSON.stringify({ ack, message }))
`

/** The first js block of docs/client.md: the bot it opens with. */
function docsBot (): string {
  const code = /```js\n([\s\S]*?)```/.exec(readFileSync(join(root, 'docs/client.md'), 'utf8'))?.[1]
  if (code === undefined) throw new Error('docs/client.md opens with no js block')
  return code
}

t.test('npm pack ./client installs into a project of its own, type-checks and talks to a server', async (t) => {
  const dir = tempDir(t, 'canopy-client-pack-')
  const packed = JSON.parse((await run('npm', ['pack', './client', '--pack-destination', dir, '--json'], { cwd: root })).stdout) as Array<{ filename: string, files: Array<{ path: string }> }>
  const tarball = packed[0]
  if (tarball === undefined) throw new Error('npm pack made nothing')
  const paths = tarball.files.map((file) => file.path)
  t.ok(paths.includes('src/index.js') && paths.includes('types/index.d.ts') && paths.includes('package.json'), 'sources, types and manifest')
  t.notOk(paths.some((path) => path.includes('tsconfig') || path.startsWith('test')), 'nothing else')

  const project = join(dir, 'project')
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'a-project', private: true, type: 'module' }))
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', join(dir, tarball.filename)], { cwd: project })
  t.match(JSON.parse(readFileSync(join(project, 'node_modules/@canopy/client/package.json'), 'utf8')), { name: '@canopy/client', version: '0.1.0' })
  // After the install, which would prune what package.json does not list.
  mkdirSync(join(project, 'node_modules/@types'))
  for (const name of ['ws', '@types/ws', '@types/node']) symlinkSync(join(root, 'node_modules', name), join(project, 'node_modules', name))

  writeFileSync(join(project, 'bot.ts'), typedProgram)
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
    // No DOM: the shipped types must hold in a Node project; no skipLibCheck: they are checked too.
    compilerOptions: { strict: true, target: 'ES2022', lib: ['ES2022'], types: ['node'], module: 'NodeNext', moduleResolution: 'NodeNext', noEmit: true },
    files: ['bot.ts']
  }))
  const tsc = join(root, 'node_modules/typescript/bin/tsc')
  const checked = await run(process.execPath, [tsc, '-p', project]).then(() => 'clean', (error: { stdout?: string }) => error.stdout ?? String(error))
  t.equal(checked, 'clean', 'the typed program compiles against the shipped types, and its wrong uses are errors')

  const app = await buildTestApp(t)
  const url = await listen(app)
  const bot = { name: uniqueName('packed'), password: 'a long password' }
  await register(app, bot.name, bot.password)
  const env = { ...process.env, CANOPY_URL: url, BOT_NAME: bot.name, BOT_PASSWORD: bot.password }
  writeFileSync(join(project, 'round-trip.mjs'), roundTrip)
  const { stdout } = await run(process.execPath, ['round-trip.mjs'], { cwd: project, env })
  const result = JSON.parse(stdout) as { ack: { id: number }, message: { id: number, author: string, topic: string } }
  t.equal(result.ack.id, 1)
  t.match(result.message, { type: 'message', topic: 'packed', id: 1, author: bot.name }, 'told its own message')

  // The bot docs/client.md opens with, answering a user of the library from source.
  writeFileSync(join(project, 'echo-bot.mjs'), docsBot())
  const user = await register(app)
  const client = new CanopyClient({ url, WebSocket, auth: { kind: 'session', cookie: user.cookie } })
  t.teardown(() => { client.close() })
  await client.subscribe('general')
  const botHere = client.once('joined', (frame) => frame.user === bot.name)
  const echoBot = spawn(process.execPath, ['echo-bot.mjs'], { cwd: project, env, stdio: ['ignore', 'inherit', 'inherit'] })
  t.teardown(() => { echoBot.kill() })
  await botHere
  const answer = client.once('message', (message) => message.author === bot.name)
  await client.publish('general', '!echo hello, bot')
  t.match(await answer, { topic: 'general', author: bot.name, text: 'hello, bot' }, 'the docs\' bot answers')
})
