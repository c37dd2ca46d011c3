// Before `npm start` and `npm run db:migrate`: compile to dist/ only when the sources changed
// since the last build, so a built tree (a production install without TypeScript, or the
// container image) starts at once, and instances started together never build at the same time.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join, relative } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const dist = join(root, 'dist')
const stampFile = join(dist, '.sources-hash')
const lockDir = join(root, '.build-lock')
/** A lock older than this was left by a build that died. */
const staleLockMs = 120_000

function sourcesHash () {
  const hash = createHash('sha256')
  const visit = (path) => {
    if (statSync(path).isDirectory()) {
      for (const name of readdirSync(path).sort()) visit(join(path, name))
    } else if (path.endsWith('.ts') || path.endsWith('.json')) {
      hash.update(relative(root, path)).update('\0').update(readFileSync(path)).update('\0')
    }
  }
  const entries = ['src', 'plugins', 'tsconfig.json', 'tsconfig.build.json'].map((entry) => join(root, entry)).filter((path) => existsSync(path))
  // A tree shipped as dist/ alone has nothing to build from.
  if (entries.length === 0) return undefined
  for (const entry of entries) visit(entry)
  return hash.digest('hex')
}

const built = (hash) => existsSync(stampFile) && readFileSync(stampFile, 'utf8') === hash

function typescriptInstalled () {
  try {
    createRequire(join(root, 'package.json')).resolve('typescript')
    return true
  } catch {
    return false
  }
}

function fail (message) {
  console.error(`canopy: ${message}`)
  process.exit(1)
}

const hash = sourcesHash()
if (hash === undefined) {
  if (existsSync(join(dist, 'src', 'server.js'))) process.exit(0)
  fail('neither the sources nor a built dist/ are here')
}
/** `npm run build` builds whatever the stamp says. */
const force = process.argv.includes('--force')
if (force && existsSync(stampFile)) rmSync(stampFile)
if (built(hash)) process.exit(0)
if (!typescriptInstalled()) {
  if (existsSync(join(dist, 'src', 'server.js'))) {
    console.error('canopy: dist/ was built from other sources and TypeScript is not installed here; running dist/ as it is')
    process.exit(0)
  }
  fail('dist/ is missing and TypeScript (a dev dependency) is not installed: run `npm ci && npm run build` first, or use the container image')
}

// One build at a time: whoever makes the lock directory builds; the others wait for it.
for (;;) {
  try {
    mkdirSync(lockDir)
    break
  } catch {
    if (built(hash)) process.exit(0)
    try {
      if (Date.now() - statSync(lockDir).mtimeMs > staleLockMs) rmSync(lockDir, { recursive: true, force: true })
    } catch {}
    await sleep(200)
  }
}
try {
  if (!built(hash)) {
    const tsc = spawnSync(process.execPath, [createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' })
    if (tsc.status !== 0) fail('the TypeScript build failed (see above)')
    mkdirSync(dist, { recursive: true })
    writeFileSync(stampFile, hash)
  }
} finally {
  rmSync(lockDir, { recursive: true, force: true })
}
