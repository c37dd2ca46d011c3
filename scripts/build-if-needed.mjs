// Before `npm start` and `npm run db:migrate`: compile to dist/ only when the sources changed
// since the last build, so a built tree (a production install without TypeScript, or the
// container image) starts at once, and instances started together never build at the same time.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { hostname } from 'node:os'
import { join, relative } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const dist = join(root, 'dist')
const stampFile = join(dist, '.sources-hash')
/** A directory holding `owner` ({ pid, host, since }): whoever holds it builds. */
const lockDir = join(root, '.build-lock')
const ownerFile = (dir) => join(dir, 'owner')
/** How often a waiting start looks again at the lock and the stamp. */
const pollMs = 200

function sourcesHash () {
  const hash = createHash('sha256')
  const visit = (path) => {
    if (statSync(path).isDirectory()) {
      for (const name of readdirSync(path).sort()) visit(join(path, name))
    } else if (path.endsWith('.ts') || path.endsWith('.json')) {
      hash.update(relative(root, path)).update('\0').update(readFileSync(path)).update('\0')
    }
  }
  const entries = ['server', 'src', 'plugins', 'tsconfig.json', 'tsconfig.build.json'].map((entry) => join(root, entry)).filter((path) => existsSync(path))
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

const describeError = (error) => `${error.code ?? error.name}: ${error.message}`

/** The lock's owner, or undefined when the lock is gone or has none (an older script's lock). */
function readOwner (dir) {
  try {
    return JSON.parse(readFileSync(ownerFile(dir), 'utf8'))
  } catch (error) {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR' || error instanceof SyntaxError) return undefined
    throw error
  }
}

/** Whether process `pid` of this host still runs (EPERM: it runs, as another user). */
function running (pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return error.code === 'EPERM'
  }
}

const me = { pid: process.pid, host: hostname(), since: Date.now() }

/**
 * Takes the lock at once or returns false. The lock directory is made aside with its owner
 * inside and renamed into place, so nobody ever sees a lock without its owner; a rename onto
 * a lock that is there (it is never empty) fails.
 */
function tryLock () {
  const pending = `${lockDir}.${process.pid}`
  rmSync(pending, { recursive: true, force: true })
  mkdirSync(pending)
  writeFileSync(ownerFile(pending), JSON.stringify(me))
  try {
    renameSync(pending, lockDir)
    return true
  } catch (error) {
    rmSync(pending, { recursive: true, force: true })
    if (error.code === 'ENOTEMPTY' || error.code === 'EEXIST') return false
    throw error
  }
}

/**
 * Removes the lock only if `owner` (undefined: none) still holds it: it is moved aside first,
 * so another start that took the lock meanwhile keeps it.
 */
function removeLock (owner) {
  const aside = `${lockDir}.removed-${process.pid}`
  try {
    renameSync(lockDir, aside)
  } catch (error) {
    if (error.code === 'ENOENT') return
    throw error
  }
  const found = readOwner(aside)
  if (found?.pid !== owner?.pid || found?.host !== owner?.host || found?.since !== owner?.since) {
    // Not the lock meant: put it back (unless yet another start has taken the place).
    try { renameSync(aside, lockDir) } catch {}
  }
  rmSync(aside, { recursive: true, force: true })
}

const hash = sourcesHash()
if (hash === undefined) {
  if (existsSync(join(dist, 'server', 'server.js'))) process.exit(0)
  fail('neither the sources nor a built dist/ are here')
}
/** `npm run build` builds whatever the stamp says. */
const force = process.argv.includes('--force')
if (force && existsSync(stampFile)) rmSync(stampFile)
if (built(hash)) process.exit(0)
if (!typescriptInstalled()) {
  if (existsSync(join(dist, 'server', 'server.js'))) {
    console.error('canopy: dist/ was built from other sources and TypeScript is not installed here; running dist/ as it is')
    process.exit(0)
  }
  fail('dist/ is missing and TypeScript (a dev dependency) is not installed: run `npm ci && npm run build` first, or use the container image')
}

// One build at a time: whoever holds the lock builds; the others wait for it, as long as it
// takes, while its owner runs. A lock whose owner is gone is taken over at once.
let waitingFor
for (;;) {
  try {
    if (tryLock()) break
  } catch (error) {
    fail(`cannot take the build lock ${lockDir}: ${describeError(error)}`)
  }
  if (built(hash)) process.exit(0)
  let owner
  try {
    owner = readOwner(lockDir)
  } catch (error) {
    fail(`cannot read the build lock ${lockDir}: ${describeError(error)}`)
  }
  if (!existsSync(lockDir)) continue
  const here = owner?.host === me.host
  if (owner === undefined || (here && !running(owner.pid))) {
    console.error(owner === undefined
      ? `canopy: removing the build lock ${lockDir}, which names no owner (an older version of this script left it)`
      : `canopy: removing the build lock of process ${owner.pid}, which is no longer running (its build failed or was killed)`)
    try {
      removeLock(owner)
    } catch (error) {
      fail(`cannot remove the build lock ${lockDir}: ${describeError(error)}`)
    }
    continue
  }
  const key = `${owner.pid}@${owner.host}@${owner.since}`
  if (waitingFor !== key) {
    waitingFor = key
    const elsewhere = here ? '' : ` on host ${owner.host} (if it is gone, remove ${lockDir})`
    console.error(`canopy: waiting for the build of process ${owner.pid}${elsewhere}, started ${Math.round((Date.now() - owner.since) / 1000)} s ago`)
  }
  await sleep(pollMs)
}
try {
  if (!built(hash)) {
    // No stamp while dist/ changes: a build that stops half-way is built again next time.
    rmSync(stampFile, { force: true })
    const tsc = spawnSync(process.execPath, [createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' })
    if (tsc.status === 0) {
      mkdirSync(dist, { recursive: true })
      writeFileSync(stampFile, hash)
    } else {
      // tsconfig.build.json has noEmitOnError: dist/ holds the last good build, unstamped.
      console.error(`canopy: the TypeScript build failed (${tsc.error?.message ?? `exit ${tsc.status ?? tsc.signal}`}, see above); nothing was written to dist/`)
      process.exitCode = 1
    }
  }
} finally {
  removeLock(me)
}
