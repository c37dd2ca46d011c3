import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import ts from 'typescript'

/**
 * Imports run one way: the composition root (server/) over the plugins (plugins/) over the
 * modules they register (src/), no files that import each other in a circle, and nothing imports the
 * entry point's start-up module but the entry points. Type-only and dynamic imports count:
 * they tie files together for a reader as much as any other.
 */

const root = fileURLToPath(new URL('..', import.meta.url))
const folders = ['server', 'src', 'plugins', 'bench', 'scripts']

function sourceFiles (folder: string): string[] {
  return readdirSync(join(root, folder), { recursive: true, encoding: 'utf8' })
    .filter((file) => /\.(ts|mts|mjs)$/.test(file) && !file.endsWith('.d.ts'))
    .map((file) => join(folder, file))
}

/** Each file of the folders → the files of the folders it imports (relative paths from the root). */
function importGraph (): Map<string, string[]> {
  const files = folders.flatMap(sourceFiles)
  const known = new Set(files)
  const graph = new Map<string, string[]>()
  for (const file of files) {
    const { importedFiles } = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true)
    const targets = importedFiles
      .map((imported) => imported.fileName)
      .filter((name) => name.startsWith('.'))
      .map((name) => relative(root, join(root, dirname(file), name)).replace(/\.js$/, '.ts'))
      .filter((target) => known.has(target))
    graph.set(file, [...new Set(targets)])
  }
  return graph
}

/** The circles of the graph: its strongly connected parts of more than one file, or a file importing itself. */
function circles (graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const visit = (file: string): void => {
    index.set(file, index.size)
    low.set(file, index.get(file) ?? 0)
    stack.push(file)
    onStack.add(file)
    for (const next of graph.get(file) ?? []) {
      if (!index.has(next)) {
        visit(next)
        low.set(file, Math.min(low.get(file) ?? 0, low.get(next) ?? 0))
      } else if (onStack.has(next)) {
        low.set(file, Math.min(low.get(file) ?? 0, index.get(next) ?? 0))
      }
    }
    if (low.get(file) !== index.get(file)) return
    const part: string[] = []
    for (let member = stack.pop(); member !== undefined; member = member === file ? undefined : stack.pop()) {
      onStack.delete(member)
      part.push(member)
    }
    if (part.length > 1 || (graph.get(file) ?? []).includes(file)) found.push(part.sort())
  }
  for (const file of graph.keys()) if (!index.has(file)) visit(file)
  return found
}

const graph = importGraph()

t.test('the import graph is read: the database interface, its factory and the engines are found', async (t) => {
  t.ok(graph.size > 50, `${graph.size} files`)
  t.same(graph.get('src/db/open.ts')?.sort(), ['src/db/database.ts', 'src/db/pglite.ts', 'src/db/postgres.ts'], 'the factory imports the two engines (dynamic imports read)')
})

t.test('no files import each other in a circle', async (t) => {
  t.same(circles(graph), [])
})

t.test('the database interface imports nothing of src/db/ but the schema it types', async (t) => {
  t.same(graph.get('src/db/database.ts')?.filter((file) => file.startsWith('src/db/')), ['src/db/schema.ts'])
})

t.test('only the entry points import the start-up module', async (t) => {
  const importers = [...graph].filter(([, targets]) => targets.includes('src/startup.ts') || targets.includes('server/server.ts')).map(([file]) => file).sort()
  t.same(importers, ['server/server.ts', 'src/cli/admin.ts', 'src/cli/migrate.ts'])
})

t.test('the folders import downward only: server/ over plugins/ over src/', async (t) => {
  const level = (file: string): number => file.startsWith('server/') ? 3 : file.startsWith('plugins/') ? 2 : file.startsWith('src/') ? 1 : 0
  const upward = [...graph].flatMap(([file, targets]) => targets.filter((target) => level(file) > 0 && level(target) > level(file)).map((target) => `${file} -> ${target}`))
  t.same(upward, [], 'no import runs back up a level')
  t.ok([...graph].some(([file, targets]) => file === 'server/app.ts' && targets.some((target) => target.startsWith('plugins/'))), 'the app factory composes the plugins')
})
