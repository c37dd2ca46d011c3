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

/** A line the browser logged as an error, or an exception the page did not catch. */
export interface PageError { page: string, phase: string, uncaught: boolean, text: string, url: string }

/** An error Chromium itself logs for a network request that a phase of a test fails on purpose. */
export interface ExpectedError { phase: string, text: RegExp, path: string }

/**
 * Watches pages for what goes wrong in them: errors in the console, exceptions the page does
 * not catch, and dialogs (dismissed). Each error is noted with the page's label and the
 * phase of the test it came in, which the test moves on as it goes.
 */
export class PageWatch {
  phase = 'start'
  readonly errors: PageError[] = []
  readonly dialogs: string[] = []

  /** Watches `page` under `label`, with the tests' step timeout; returns it. */
  watch (page: Page, label: string): Page {
    page.setDefaultTimeout(waitMs)
    page.on('console', (message) => {
      if (message.type() === 'error') this.errors.push({ page: label, phase: this.phase, uncaught: false, text: message.text(), url: message.location().url })
    })
    page.on('pageerror', (error) => { this.errors.push({ page: label, phase: this.phase, uncaught: true, text: error.message, url: '' }) })
    page.on('dialog', (dialog) => {
      this.dialogs.push(dialog.message())
      void dialog.dismiss()
    })
    return page
  }

  /** The errors but those `expected` in their phase (for a request to a path of `baseUrl`). */
  unexpected (expected: ExpectedError[] = [], baseUrl = 'http://127.0.0.1'): PageError[] {
    return this.errors.filter((error) => error.uncaught || !expected.some((allowed) =>
      allowed.phase === error.phase && allowed.text.test(error.text) && new URL(error.url, baseUrl).pathname === allowed.path))
  }
}

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

/** Waits until the log holds a message with exactly this text (`count` times, once by default). */
export async function waitForText (page: Page, text: string, count = 1): Promise<void> {
  await page.waitForFunction(([text, count]) =>
    Array.from(document.querySelectorAll('#messages .message .text')).filter((node) => node.textContent === text).length === count,
  [text, count] as const, { timeout: waitMs })
}

/** Waits until none of the reader's messages is still waiting for its ack. */
export async function waitForAllSent (page: Page): Promise<void> {
  await page.waitForFunction(() => document.querySelector('#messages .message.pending') === null, undefined, { timeout: waitMs })
}

/** Types `text` in the composer and sends it with Enter. */
export async function send (page: Page, text: string): Promise<void> {
  const input = page.getByLabel('Message', { exact: true })
  await input.fill(text)
  await input.press('Enter')
}

/** Logs in through the form (the page is on it) and waits until the chat is connected. */
export async function logIn (page: Page, name: string, password: string): Promise<void> {
  await page.getByLabel('Name', { exact: true }).fill(name)
  await page.getByLabel('Password', { exact: true }).fill(password)
  await page.getByRole('button', { name: 'Log in', exact: true }).click()
  await waitForConnection(page, 'Connected')
}

/** A still picture: no transition half-way, no hover left over from a click. */
export async function screenshot (page: Page, path: string): Promise<void> {
  await page.mouse.move(0, 0)
  await page.screenshot({ path, animations: 'disabled' })
}

/** Unfolds the topic list where the screen is too narrow to show it beside the log. */
export async function openTopicList (page: Page): Promise<void> {
  const toggle = page.locator('#topics-toggle')
  if (await toggle.isVisible() && await toggle.getAttribute('aria-expanded') === 'false') await toggle.click()
  await page.locator('#topics-panel').waitFor()
}

/** Unfolds the member list (who is here, and a private topic's members) where the screen is too narrow to show it beside the log. */
export async function openMemberList (page: Page): Promise<void> {
  const toggle = page.locator('#members-toggle')
  if (await toggle.getAttribute('aria-expanded') === 'false') await toggle.click()
  await page.locator('#members-panel').waitFor()
}

/** The line above the log that tells what happened to the reader's topics, once it says `text`. */
export async function waitForNotice (page: Page, text: string | RegExp): Promise<void> {
  await page.locator('#page-notice-text').getByText(text).waitFor()
}
