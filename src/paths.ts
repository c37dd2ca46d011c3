import { existsSync } from 'node:fs'

/**
 * The project's root directory as a URL ending in '/'. Found by walking up to package.json,
 * so it is the same whether the code runs from src/ through tsx or compiled under dist/.
 */
export const projectRoot: URL = (() => {
  let dir = new URL('./', import.meta.url)
  while (!existsSync(new URL('package.json', dir))) {
    const parent = new URL('../', dir)
    if (parent.href === dir.href) throw new Error('package.json not found above ' + import.meta.url)
    dir = parent
  }
  return dir
})()
