import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as protocol from '../../src/protocol.js'
import { projectRoot } from '../../src/paths.js'
import { buildTestApp, testConfig } from '../helpers/app.js'

/**
 * The page takes the protocol's constants and the server's limits from /protocol.js, which
 * the server generates from src/protocol.ts and its configuration: the module must say what
 * they say, every name the page imports must be in it, and no copy may creep back into
 * public/.
 */

const publicDir = fileURLToPath(new URL('public/', projectRoot))
/** Exactly what /protocol.js exports. */
const exportNames = ['topicPattern', 'defaultTopic', 'namePattern', 'minPasswordChars', 'maxPasswordChars', 'maxRefChars',
  'maxMessageChars', 'historyLimit', 'maxSinceMessages', 'maxPageSize', 'maxTopicsPerConnection', 'maxListedTopics', 'maxJoinedTopics', 'maxUnreadCount',
  'CloseCode', 'errorCodes']

/** The page's sources: every module and the HTML, by path under public/. */
function pageSources (): Map<string, string> {
  const sources = new Map<string, string>()
  for (const file of readdirSync(publicDir, { recursive: true, encoding: 'utf8' })) {
    if (file.endsWith('.js') || file.endsWith('.html')) sources.set(file, readFileSync(join(publicDir, file), 'utf8'))
  }
  return sources
}

function escapeRegExp (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
}

/** A number used as a length limit: in an attribute, a comparison, a constant or a sentence. */
function lengthLimit (limit: number): RegExp {
  return new RegExp(`(?:maxlength\\s*=\\s*["']?|maxLength\\s*=\\s*|Chars\\s*=\\s*|length\\s*[<>]=?\\s*)${limit}\\b|\\b${limit} characters`)
}

/** What a copy of a protocol value looks like in the page's source, each with why it is one. */
function copyPatterns (maxMessageChars: number): Array<{ what: string, pattern: RegExp }> {
  const bracketed = (pattern: RegExp): string => pattern.source.match(/\[[^\]]+\]/)?.[0] ?? pattern.source
  return [
    { what: 'the topic pattern', pattern: new RegExp(escapeRegExp(bracketed(protocol.topicPattern))) },
    { what: 'the name pattern', pattern: new RegExp(escapeRegExp(bracketed(protocol.namePattern))) },
    { what: `the default topic "${protocol.defaultTopic}"`, pattern: new RegExp(`['"\`#]${escapeRegExp(protocol.defaultTopic)}\\b`) },
    ...Object.entries(protocol.CloseCode).map(([name, code]) => ({ what: `close code ${name}`, pattern: new RegExp(`\\b${code}\\b`) })),
    { what: 'the longest message', pattern: lengthLimit(maxMessageChars) },
    { what: 'the longest password', pattern: lengthLimit(protocol.maxPasswordChars) },
    { what: 'the shortest password', pattern: lengthLimit(protocol.minPasswordChars) },
    { what: 'a protocol constant declared again', pattern: new RegExp(`\\b(?:const|let|var)\\s+(?:${exportNames.join('|')})\\b`) },
    { what: 'an error code list of its own', pattern: /\b(?:const|let|var)\s+\w*[Ee]rrorCodes\s*=\s*\[/ }
  ]
}

/** The names each page module imports from /protocol.js. */
function protocolImports (source: string): string[] {
  const names: string[] = []
  for (const match of source.matchAll(/import\s*\{([^}]*)\}\s*from\s*['"]\/protocol\.js['"]/g)) {
    for (const name of (match[1] ?? '').split(',')) if (name.trim() !== '') names.push(name.trim().split(/\s+as\s+/)[0] ?? '')
  }
  return names
}

t.test('/protocol.js is src/protocol.ts and the running configuration, as a module', async (t) => {
  // Not the defaults: the configured values must reach the page.
  const app = await buildTestApp(t, { HISTORY_LIMIT: '17', MAX_MESSAGE_CHARS: '1234' })
  const response = await app.inject({ url: '/protocol.js' })
  t.equal(response.statusCode, 200)
  t.match(response.headers['content-type'], /^text\/javascript\b/, 'served as JavaScript, which a module script needs')

  const served = await import(`data:text/javascript;base64,${Buffer.from(response.body).toString('base64')}`) as Record<string, unknown>
  t.same(Object.keys(served).sort(), [...exportNames].sort(), 'exactly the names the page may use')
  for (const name of ['topicPattern', 'namePattern'] as const) {
    t.ok(served[name] instanceof RegExp, `${name} is a RegExp`)
    t.equal(String(served[name]), String(protocol[name]), `${name} is src/protocol.ts's`)
  }
  const same: Record<string, unknown> = {
    defaultTopic: protocol.defaultTopic,
    minPasswordChars: protocol.minPasswordChars,
    maxPasswordChars: protocol.maxPasswordChars,
    maxRefChars: protocol.maxRefChars,
    maxSinceMessages: protocol.maxSinceMessages,
    maxPageSize: protocol.maxPageSize,
    CloseCode: protocol.CloseCode,
    errorCodes: protocol.errorCodes,
    maxMessageChars: 1234,
    historyLimit: 17
  }
  for (const [name, value] of Object.entries(same)) t.same(served[name], value, `${name} is ${JSON.stringify(value)}`)
  t.equal(app.config.maxMessageChars, 1234)
  t.equal(app.config.historyLimit, 17)
})

t.test('the page imports from /protocol.js only what it exports', async (t) => {
  const imported = new Set<string>()
  for (const [file, source] of pageSources()) {
    for (const name of protocolImports(source)) {
      imported.add(name)
      t.ok(exportNames.includes(name), `${file} imports ${name}, which /protocol.js exports`)
    }
  }
  // What the page is known to need: were these imports to vanish, a copy would stand in.
  // (Close codes are the client library's business now, /client/: the page reads none; a copy of one is still caught below.)
  for (const name of ['topicPattern', 'defaultTopic', 'namePattern', 'minPasswordChars', 'maxMessageChars', 'historyLimit']) {
    t.ok(imported.has(name), `the page imports ${name}`)
  }
  t.notOk(pageSources().has('protocol.js'), 'public/ has no protocol.js of its own: the server serves that URL')
})

t.test('the page keeps no copy of a protocol value', async (t) => {
  // The default limit: the one a copy would most likely hold.
  const patterns = copyPatterns(testConfig(t).maxMessageChars)
  // The scan finds what it looks for: the copies the page used to keep are caught.
  const formerCopies = [
    'const topicPattern = /^[a-z0-9][a-z0-9_.-]{0,63}$/',
    'const namePattern = /^[A-Za-z0-9_.-]{3,32}$/',
    "const defaultTopic = 'general'",
    'if (event.code === 4401) return',
    'if (password.length < 8) return',
    '<input maxlength="256">',
    '<p class="hint">At least 8 characters</p>',
    '<h2>#general</h2>'
  ]
  for (const line of formerCopies) t.ok(patterns.some(({ pattern }) => pattern.test(line)), `a copy like ${line} is caught`)

  for (const [file, source] of pageSources()) {
    const copies = source.split('\n').flatMap((line, index) => patterns
      .filter(({ pattern }) => pattern.test(line))
      .map(({ what }) => `${file}:${index + 1}: ${what}: ${line.trim()}`))
    t.same(copies, [], `${file} takes its protocol values from /protocol.js`)
  }
})
