import { readFileSync } from 'node:fs'
import { projectRoot } from './paths.js'

/** The version of this build, as package.json gives it: in the start-up line and canopy_build_info. */
export const version: string = (JSON.parse(readFileSync(new URL('package.json', projectRoot), 'utf8')) as { version: string }).version
