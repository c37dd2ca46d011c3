import { cpSync, mkdirSync, statSync } from 'node:fs'
import { dirname, join, posix } from 'node:path'

/**
 * The Dockerfile read as the deploy test replays it outside a container: its stages and
 * instructions, a RUN step's commands, and a COPY done on directories standing for the image's.
 */

/** One stage of the Dockerfile: its instructions, continuation lines joined. */
export interface Stage { name: string | undefined, instructions: Array<{ keyword: string, args: string }> }

export function parseDockerfile (text: string): Stage[] {
  const stages: Stage[] = []
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'))
  for (const line of lines) {
    const keyword = (/^\S+/.exec(line)?.[0] ?? '').toUpperCase()
    const args = line.replace(/^\S+\s*/, '')
    if (keyword === 'FROM') stages.push({ name: /\sAS\s+(\S+)$/i.exec(args)?.[1], instructions: [] })
    else stages.at(-1)?.instructions.push({ keyword, args })
  }
  return stages
}

/** The arguments of each of a stage's instructions of this keyword (CMD, ENV, …), in order. */
export const instructionArgs = (stage: Stage, keyword: string): string[] =>
  stage.instructions.filter((step) => step.keyword === keyword).map((step) => step.args)

/** A RUN step's commands, without its --mount and other flags. */
export const runCommands = (args: string): string[] =>
  args.replace(/^(--\S+\s+)+/, '').split('&&').map((command) => command.trim())

/**
 * A COPY of the Dockerfile, on directories standing for the image's: sources from the build
 * context, or from another stage with --from; a directory's contents go into the destination.
 */
export function replayCopy (args: string, workdir: string, into: string, context: string, stages: Map<string, string>): void {
  const words = args.split(/\s+/)
  const from = words.find((word) => word.startsWith('--from='))?.slice('--from='.length)
  const paths = words.filter((word) => !word.startsWith('--'))
  const destination = paths.pop() ?? ''
  const local = (path: string): string => posix.isAbsolute(path) ? posix.relative(workdir, path) : path
  const sourceRoot = from === undefined ? context : stages.get(from)
  if (sourceRoot === undefined) throw new Error(`COPY --from=${from}: no such stage`)
  for (const path of paths) {
    const source = join(sourceRoot, from === undefined ? path : local(path))
    const intoDirectory = destination.endsWith('/') || paths.length > 1
    const isFile = !statSync(source).isDirectory()
    const target = join(into, local(destination), isFile && intoDirectory ? posix.basename(path) : '')
    mkdirSync(isFile ? dirname(target) : target, { recursive: true })
    cpSync(source, target, { recursive: true })
  }
}
