import { existsSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import type { Page } from 'playwright-core'

/** What the browser tests share: which Chromium, how to start it, and how to read the page. */

/** Debian's Chromium, or CHROMIUM_PATH; the browser tests are skipped, saying so, without one. */
export const chromiumPath = [process.env.CHROMIUM_PATH, '/usr/bin/chromium']
  .find((path): path is string => path !== undefined && path !== '' && existsSync(path))

export const chromiumArgs = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']

/** How long a step may take before the test fails: generous, for a loaded 2-core machine. */
export const waitMs = 20_000

export interface LogItem { id: number | undefined, author: string, text: string, status: string, pending: boolean }

/** Listens on 127.0.0.1 (on `port`, or any free one) and returns the port. */
export async function listen (app: FastifyInstance, port = 0): Promise<number> {
  await app.listen({ port, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

/** Every message in the page's log, top to bottom. */
export async function logItems (page: Page): Promise<LogItem[]> {
  return await page.locator('#messages .message').evaluateAll((items) => items.map((item) => ({
    id: item.dataset.id === undefined ? undefined : Number(item.dataset.id),
    author: item.querySelector('.author')?.textContent ?? '',
    text: item.querySelector('.text')?.textContent ?? '',
    status: item.querySelector('.status')?.textContent ?? '',
    pending: item.classList.contains('pending')
  })))
}

export async function waitForConnection (page: Page, label: 'Connected' | 'Reconnecting…', timeout = waitMs): Promise<void> {
  await page.getByRole('status').getByText(label, { exact: true }).waitFor({ timeout })
}
