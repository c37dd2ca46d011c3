/**
 * `npm run new:endpoint -- <name>`: a new WebSocket endpoint at /<name> on the endpoint layer
 * (src/endpoint.ts, described in docs/endpoints.md). It writes plugins/<name>-endpoint.ts with
 * its handlers stubbed, test/plugins/<name>-endpoint.test.ts that passes as generated, and registers
 * the plugin in the app factory, server/app.ts, at its two marker comments.
 *
 * Every check runs before anything is written: a refused name changes nothing, and says why
 * in one line on stderr, with exit code 1.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** This script's project, wherever it is run from. */
const root = fileURLToPath(new URL('..', import.meta.url))

/**
 * A name is one path segment that also makes a file name and, camel-cased, an identifier:
 * lower-case letters and digits, starting with a letter, words joined by single hyphens.
 */
const namePattern = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/
const maxNameChars = 40
/** Paths docs/protocol.md fixes (2. HTTP routes, 3. WebSocket /chat), whether or not a plugin serves them yet. */
const reservedNames = new Set(['api', 'healthz', 'readyz', 'chat'])

const appFile = 'server/app.ts'
const importMarker = '// endpoint imports: `npm run new:endpoint -- <name>` adds its plugin here'
const registrationMarker = '// endpoint registrations: `npm run new:endpoint -- <name>` adds its plugin here'

/** A name the generator will not take; its message is the one line the user sees. */
class Refused extends Error {}

interface Names {
  /** As given: the path segment and the file names. */
  name: string
  /** The plugin's identifier, e.g. liveFeedEndpoint for live-feed. */
  plugin: string
  /** The type of the connection's state, e.g. LiveFeedState. */
  state: string
  /** The type of the frames the endpoint sends, e.g. LiveFeedFrame. */
  frame: string
}

interface Plan {
  files: Array<{ path: string, content: string }>
  app: string
}

function names (args: string[]): Names {
  if (args.length !== 1) throw new Refused('give exactly one endpoint name: npm run new:endpoint -- <name>')
  const name = args[0] ?? ''
  if (name === '') throw new Refused('the endpoint name is empty: npm run new:endpoint -- <name>')
  if (name.length > maxNameChars || !namePattern.test(name)) {
    throw new Refused(`${JSON.stringify(name)} is not a valid endpoint name: it becomes the path /<name> and the file plugins/<name>-endpoint.ts, so use 1 to ${maxNameChars} lower-case letters and digits, starting with a letter, words joined by single hyphens (${namePattern.source})`)
  }
  const camel = name.replace(/-([a-z0-9])/g, (_match, letter: string) => letter.toUpperCase())
  const pascal = `${camel.charAt(0).toUpperCase()}${camel.slice(1)}`
  return { name, plugin: `${camel}Endpoint`, state: `${pascal}State`, frame: `${pascal}Frame` }
}

/** Everything the generator would write, after every check passed. */
function plan (args: string[]): Plan {
  const n = names(args)
  const { name } = n
  if (reservedNames.has(name)) throw new Refused(`/${name} is reserved by Canopy (reserved: ${[...reservedNames].map((reserved) => `/${reserved}`).join(', ')}); choose another name`)
  const pluginFile = `plugins/${name}-endpoint.ts`
  const testFile = `test/plugins/${name}-endpoint.test.ts`
  for (const file of [pluginFile, testFile, `public/${name}`]) {
    if (existsSync(join(root, file))) throw new Refused(`${file} already exists; choose another name`)
  }
  const route = routeDeclaration(name)
  if (route !== undefined) throw new Refused(`${route} already serves /${name}; choose another name`)

  const app = readFileSync(join(root, appFile), 'utf8')
  if (new RegExp(`\\b${n.plugin}\\b`).test(app)) throw new Refused(`${appFile} already uses the name ${n.plugin}; choose another name`)
  const withImport = insertAfter(app, importMarker, `import ${n.plugin} from '../${pluginFile.replace(/\.ts$/, '.js')}'`)
  const withRegistration = insertAfter(withImport, registrationMarker, `await app.register(${n.plugin})`)
  return {
    files: [
      { path: pluginFile, content: pluginSource(n) },
      { path: testFile, content: testSource(n) }
    ],
    app: withRegistration
  }
}

/** The file of plugins/ or src/ that declares a route at /<name> or under it, if any. */
function routeDeclaration (name: string): string | undefined {
  const declaration = new RegExp(`(?:\\.(?:get|post|put|patch|delete|head|options|all|route)\\(\\s*|\\b(?:path|url):\\s*)['"\`]/${name}(?:[/?'"\`])`)
  for (const dir of ['plugins', 'src']) {
    const files = readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts'))
    for (const file of files) {
      if (declaration.test(readFileSync(join(root, dir, file), 'utf8'))) return `${dir}/${file}`
    }
  }
  return undefined
}

/** `source` with `line` added right after the one marker line, at the marker's indentation. */
function insertAfter (source: string, marker: string, line: string): string {
  const lines = source.split('\n')
  const at = lines.map((text) => text.trim()).flatMap((text, i) => text === marker ? [i] : [])
  if (at.length !== 1) throw new Refused(`${appFile} must hold the marker line "${marker}" exactly once (found ${at.length})`)
  const index = at[0] as number
  const indent = /^\s*/.exec(lines[index] ?? '')?.[0] ?? ''
  lines.splice(index + 1, 0, indent + line)
  return lines.join('\n')
}

function write (plan: Plan): string[] {
  const created: string[] = []
  try {
    for (const file of plan.files) {
      // 'wx': never overwrite a file that appeared since the checks.
      writeFileSync(join(root, file.path), file.content, { flag: 'wx' })
      created.push(file.path)
    }
    writeFileSync(join(root, appFile), plan.app)
  } catch (error) {
    for (const file of created) rmSync(join(root, file), { force: true })
    throw error
  }
  return created
}

function pluginSource ({ name, plugin, state, frame }: Names): string {
  return `import fp from 'fastify-plugin'
import { Type, type Static } from '@sinclair/typebox'
import { addEndpoint, refuse } from '../src/endpoint.js'
import { showsItsTicket } from '../src/tickets.js'
import type { User } from '../src/users.js'

/** What /${name} keeps per connection; every handler gets it as \`connection.state\`. */
interface ${state} {
  user: User
}

/**
 * The frames /${name} sends, as TypeBox schemas like /chat's in src/protocol.ts: their type
 * is what \`connection.send\` takes, and the test checks every frame against them. With more
 * than one frame, ${frame} becomes the Static of their Type.Union.
 */
export const EchoFrame = Type.Object({ type: Type.Literal('echo'), text: Type.String() })
export type ${frame} = Static<typeof EchoFrame>

/**
 * The /${name} endpoint on Canopy's endpoint layer (src/endpoint.ts, docs/endpoints.md). It opens only for a
 * logged-in session showing its ticket, as /chat does, and echoes every text frame.
 * Using fastify.topicBus, fastify.presence or fastify.publish? Add 'topic-bus', 'presence'
 * or 'publish' to the dependencies.
 */
export default fp(async function ${plugin} (fastify) {
  const { config } = fastify

  addEndpoint<${state}, ${frame}>(fastify, {
    name: '${name}',
    path: '/${name}',
    keepaliveIntervalMs: config.keepaliveIntervalMs,
    maxBufferedBytes: config.sendBufferLimitBytes,

    // Before the upgrade, from the HTTP request and its session: return the connection's
    // state, or refuse(status, error, message) to answer with that status and open nothing.
    async open (request) {
      const { user } = request
      if (user === undefined) return refuse(401, 'unauthorized', 'Log in first')
      if (!showsItsTicket(request)) return refuse(403, 'forbidden', 'The ticket is missing or not this session\\'s (see GET /api/me)')
      return { user }
    },

    opened (connection) {
      // Right after the upgrade: send a first frame with connection.send(frame). Every
      // connection is a Subscriber of the topic bus: to subscribe it to a topic, ask
      // await fastify.access.decide(user.id, topic, 'read') first (a private topic is its
      // members' only), then await fastify.topicBus.subscribe(topic, connection,
      // { historyLimit: config.historyLimit, userId: user.id }, subscribed), where
      // subscribed(history) makes the frame that carries the topic's history (the bus
      // delivers nothing of a private topic to a subscription without a member's userId).
    },

    text (connection, data) {
      // One text frame (valid UTF-8, at most 64 KiB); the connection's next frame waits until
      // this returns or its promise settles. Answer with connection.send(frame), publish with
      // fastify.publish(connection.state.user, topic, text, ref) after checkText from
      // src/protocol.ts (or fastify.publisher.queue, not to wait for the commit; both ask
      // who may publish in the topic, and answer \`forbidden\` to a non-member), or
      // connection.close(code, reason).
      connection.send({ type: 'echo', text: data })
    },

    // No binary handler: a binary frame closes the connection with 1003. Add
    // binary (connection, data: Buffer) to take binary frames instead.

    closed (connection, code) {
      // The connection is gone, whoever closed it (\`code\` says how); runs once. Release what
      // opened took, e.g. fastify.topicBus.unsubscribe(topic, connection) for each topic.
    }
  })
}, { name: '${name}-endpoint', fastify: '5.x', dependencies: ['config', 'websocket', 'session'] })
`
}

function testSource ({ name, frame }: Names): string {
  return `import { once } from 'node:events'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import t from 'tap'
import { EchoFrame, type ${frame} } from '../../plugins/${name}-endpoint.js'
import { buildTestApp, register } from '../helpers/app.js'
import { ticketFor } from '../helpers/chat.js'

const echoFrame = TypeCompiler.Compile(EchoFrame)

t.test('the /${name} endpoint', async (t) => {
  const app = await buildTestApp(t)
  const { cookie } = await register(app)
  const ticket = await ticketFor(app, cookie)
  const url = (ticket: string): string => \`/${name}?\${new URLSearchParams({ ticket }).toString()}\`

  await t.test('is refused before the upgrade', async (t) => {
    await t.rejects(app.injectWS(url(ticket)), /Unexpected server response: 401/, 'no session: 401')
    await t.rejects(app.injectWS('/${name}', { headers: { cookie } }), /Unexpected server response: 403/, 'no ticket: 403')
    await t.rejects(app.injectWS(url('not-the-ticket'), { headers: { cookie } }), /Unexpected server response: 403/, 'a wrong ticket: 403')
  })

  await t.test('opens for a logged-in session with its ticket and echoes a text frame', async (t) => {
    const socket = await app.injectWS(url(ticket), { headers: { cookie } })
    const reply = once(socket, 'message')
    socket.send('hello, ${name}')
    const [data, isBinary] = await reply as [Buffer, boolean]
    t.equal(isBinary, false, 'as a text frame')
    const frame: unknown = JSON.parse(data.toString('utf8'))
    t.ok(echoFrame.Check(frame), 'an echo frame, as its schema says')
    t.same(frame, { type: 'echo', text: 'hello, ${name}' } satisfies ${frame})
    socket.terminate()
  })
})
`
}

try {
  const created = write(plan(process.argv.slice(2)))
  for (const file of created) console.log(`created ${file}`)
  console.log(`updated ${appFile}: imports and registers the plugin`)
  console.log(`Fill in the handlers of ${created[0] ?? ''}, then run: npx tap ${created[1] ?? ''}`)
} catch (error) {
  if (!(error instanceof Refused)) throw error
  console.error(`new:endpoint: ${error.message}`)
  process.exitCode = 1
}
