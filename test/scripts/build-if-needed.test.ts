import { spawn, type ChildProcessByStdio } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { tempDir } from '../helpers/app.js'

/**
 * scripts/build-if-needed.mjs, run for real on a small project of its own: the script, the
 * repository's tsconfig.build.json, one source file, and this repository's TypeScript.
 */

const root = fileURLToPath(new URL('../..', import.meta.url))
const goodSource = 'export const answer: number = 42\n'
const brokenSource = 'export const answer: number = "forty-two"\n'

function project (t: Test): string {
  const dir = tempDir(t, 'canopy-build-')
  chmodSync(dir, 0o755)
  mkdirSync(join(dir, 'scripts'))
  mkdirSync(join(dir, 'src'))
  copyFileSync(join(root, 'scripts', 'build-if-needed.mjs'), join(dir, 'scripts', 'build-if-needed.mjs'))
  // The repository's build config, over a base that type-checks without DOM or @types/node,
  // which would make each build here take seconds.
  copyFileSync(join(root, 'tsconfig.build.json'), join(dir, 'tsconfig.build.json'))
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2023', lib: ['ES2023'], types: [], module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: true, rootDir: '.', outDir: 'dist', noEmit: true }
  }))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'build-test', private: true, type: 'module' }))
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'))
  writeFileSync(join(dir, 'src', 'main.ts'), goodSource)
  return dir
}

interface Run {
  child: ChildProcessByStdio<null, Readable, Readable>
  /** Everything it printed to stderr so far. */
  stderr: () => string
  /** Resolves once stderr holds a match; rejects if the script ends first. */
  says: (pattern: RegExp) => Promise<void>
  exited: Promise<number | null>
}

function run (dir: string, options: { uid?: number } = {}): Run {
  const child = spawn(process.execPath, ['scripts/build-if-needed.mjs'], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.uid })
  })
  let stderr = ''
  const listeners: Array<() => void> = []
  child.stdout.resume()
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
    for (const listener of listeners) listener()
  })
  const exited = (once(child, 'exit') as Promise<[number | null]>).then(([code]) => code)
  const says = async (pattern: RegExp): Promise<void> => {
    await new Promise<void>((resolve, reject) => {
      const check = (): void => { if (pattern.test(stderr)) resolve() }
      listeners.push(check)
      check()
      void exited.then(() => { reject(new Error(`the script ended without saying ${String(pattern)}: ${stderr}`)) })
    })
  }
  return { child, stderr: () => stderr, says, exited }
}

const lockDir = (dir: string): string => join(dir, '.build-lock')
const builtJs = (dir: string): string => readFileSync(join(dir, 'dist', 'src', 'main.js'), 'utf8')

/** A lock as another start of the script holds it. */
function holdLock (dir: string, owner: { pid: number, host?: string, since?: number }): void {
  mkdirSync(lockDir(dir))
  writeFileSync(join(lockDir(dir), 'owner'), JSON.stringify({ host: hostname(), since: Date.now(), ...owner }))
}

/** The pid of a process that has ended. */
async function deadPid (): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await once(child, 'exit')
  if (child.pid === undefined) throw new Error('no pid')
  return child.pid
}

t.test('a failed build keeps the last good dist/, leaves no lock, fails again until fixed, then builds', async (t) => {
  const dir = project(t)
  t.equal(await run(dir).exited, 0, 'the first build succeeds')
  t.match(builtJs(dir), /answer = 42/, 'and writes dist/')

  writeFileSync(join(dir, 'src', 'main.ts'), brokenSource)
  const failed = run(dir)
  t.equal(await failed.exited, 1, 'a type error fails the build')
  t.match(failed.stderr(), /the TypeScript build failed/, 'saying so')
  t.notOk(existsSync(lockDir(dir)), 'and leaves no lock behind')
  t.match(builtJs(dir), /answer = 42/, 'dist/ still holds the last good build (noEmitOnError)')

  const again = run(dir)
  t.equal(await again.exited, 1, 'the next start with the same sources builds again and fails again, at once')
  t.notMatch(again.stderr(), /waiting/, 'without waiting for anything')

  writeFileSync(join(dir, 'src', 'main.ts'), goodSource)
  t.equal(await run(dir).exited, 0, 'put back, the sources of the last good build are built again')
  writeFileSync(join(dir, 'src', 'main.ts'), 'export const answer: number = 43\n')
  t.equal(await run(dir).exited, 0, 'and a fixed change builds')
  t.match(builtJs(dir), /answer = 43/, 'into dist/')
})

t.test('a lock whose owner is gone is taken over at once, saying whose it was', async (t) => {
  const dir = project(t)
  const pid = await deadPid()
  holdLock(dir, { pid })
  const start = run(dir)
  t.equal(await start.exited, 0, 'the build runs')
  t.match(start.stderr(), new RegExp(`removing the build lock of process ${pid}, which is no longer running`))
  t.match(builtJs(dir), /answer = 42/)
  t.notOk(existsSync(lockDir(dir)), 'and releases its own lock')
})

t.test('a lock left by the older script (an empty directory) is taken over', async (t) => {
  const dir = project(t)
  mkdirSync(lockDir(dir))
  t.equal(await run(dir).exited, 0, 'the build runs')
  t.match(builtJs(dir), /answer = 42/)
  t.notOk(existsSync(lockDir(dir)), 'and no lock is left')
})

t.test('a start waits for a build that runs, however old, says for whom, and goes on when it ends', async (t) => {
  const dir = project(t)
  // Another start, building for ten minutes already: it is never taken for dead while it runs.
  const owner = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })
  t.teardown(() => { owner.kill() })
  if (owner.pid === undefined) throw new Error('no pid')
  holdLock(dir, { pid: owner.pid, since: Date.now() - 600_000 })
  const past = new Date(Date.now() - 600_000)
  utimesSync(lockDir(dir), past, past)

  const start = run(dir)
  await start.says(new RegExp(`waiting for the build of process ${owner.pid}, started \\d+ s ago`))
  t.notOk(existsSync(join(dir, 'dist')), 'it builds nothing while the other build runs')
  // The other build ends without a stamp (it failed): this one builds.
  rmSync(lockDir(dir), { recursive: true })
  t.equal(await start.exited, 0, 'once the lock is released, it builds')
  t.match(builtJs(dir), /answer = 42/)
  t.equal(start.stderr().match(/waiting/g)?.length, 1, 'it said once what it waited for')
})

t.test('a lock on another host is waited on, and the message says how to clear it', async (t) => {
  const dir = project(t)
  holdLock(dir, { pid: 1, host: 'elsewhere.example' })
  const start = run(dir)
  await start.says(/waiting for the build of process 1 on host elsewhere\.example \(if it is gone, remove .*\.build-lock\)/)
  rmSync(lockDir(dir), { recursive: true })
  t.equal(await start.exited, 0)
})

t.test('two starts at once build once', async (t) => {
  const dir = project(t)
  const starts = [run(dir), run(dir)]
  t.same(await Promise.all(starts.map(async (start) => await start.exited)), [0, 0], 'both succeed')
  t.match(builtJs(dir), /answer = 42/)
  t.notOk(existsSync(lockDir(dir)), 'no lock is left')
})

t.test('a tree where the lock cannot be made is an error, not a wait', async (t) => {
  const dir = project(t)
  // Unwritable: for another user when this runs as root (root writes anywhere), else by mode.
  const asRoot = process.getuid?.() === 0
  if (!asRoot) {
    chmodSync(dir, 0o555)
    t.teardown(() => { chmodSync(dir, 0o755) })
  }
  const start = run(dir, asRoot ? { uid: 65534 } : {})
  t.equal(await start.exited, 1, 'it exits 1')
  t.match(start.stderr(), /cannot take the build lock .*\.build-lock: EACCES/, 'naming the error')
})
