import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import ts from 'typescript'
import { tempDir } from '../helpers/app.js'

/**
 * The package's types: client/types/ is generated from the JSDoc of client/src/ by
 * `npx tsc -p client/tsconfig.json` and committed, so that the packed package needs no build.
 * Generating them again must type-check the sources (strict, checkJs) and give the very
 * files committed; and package.json must point at them, types first.
 */

const clientDir = fileURLToPath(new URL('../../client/', import.meta.url))

/** Every file under `dir`, relative, sorted, with its text. */
function filesOf (dir: string): Map<string, string> {
  const names = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.d.ts')).sort()
  return new Map(names.map((name) => [name, readFileSync(join(dir, name), 'utf8')]))
}

t.test('client/types/ is what client/src/ generates, and the sources type-check', async (t) => {
  const outDir = tempDir(t, 'canopy-client-types-')
  const config = ts.getParsedCommandLineOfConfigFile(join(clientDir, 'tsconfig.json'), { outDir }, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => { throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')) }
  })
  if (config === undefined) throw new Error('client/tsconfig.json could not be read')
  const program = ts.createProgram({ rootNames: config.fileNames, options: config.options })
  const emitted = program.emit()
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...emitted.diagnostics]
  t.same(diagnostics.map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')), [], 'no type errors in client/src')

  const generated = filesOf(outDir)
  const committed = filesOf(join(clientDir, 'types'))
  t.same([...committed.keys()], [...generated.keys()], 'the same files')
  for (const [name, text] of generated) {
    t.equal(committed.get(name), text, `${name} is current (run: npx tsc -p client/tsconfig.json)`)
  }
})

t.test('package.json: an ES module package, types first in exports, nothing to install', async (t) => {
  const manifest = JSON.parse(readFileSync(join(clientDir, 'package.json'), 'utf8')) as Record<string, unknown>
  t.match(manifest, { name: '@canopy/client', version: '0.1.0', type: 'module', engines: { node: '>=20' }, files: ['src', 'types'] })
  const root = (manifest.exports as Record<string, Record<string, string>>)['.']
  t.same(Object.keys(root ?? {}), ['types', 'default'], 'types first')
  t.same(root, { types: './types/index.d.ts', default: './src/index.js' })
  t.notOk('dependencies' in manifest, 'no dependencies')
})
