import t, { type Test } from 'tap'
import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import { buildApp } from '../../server/app.js'
import type { Config } from '../../src/config.js'
import { projectRoot } from '../../src/paths.js'
import { migratedDataDir, register, testConfig, uniqueName } from '../helpers/app.js'
import { chromiumArgs, chromiumPath, listen, logItems, openTopicList, PageWatch, screenshot as saveScreenshot, send, waitForAllSent, waitForConnection, waitForText, waitMs, type ExpectedError, type LogItem } from '../helpers/page.js'

/**
 * The chat page end to end, in Debian's Chromium driven by playwright-core: two people in
 * two browser contexts, against a real server that is restarted halfway through.
 */

const screenshotDir = fileURLToPath(new URL('test-output/screenshots/', projectRoot))
const password = 'correct horse battery'
/** Small, so that a reload shows only part of the topic and a restart leaves a gap to catch up. */
const historyLimit = 10
const maxMessageChars = 100

/**
 * Errors Chromium itself logs for network requests, in the phases of this test that cause
 * them on purpose. The page adds none of its own.
 */
const expectedConsoleErrors: ExpectedError[] = [
  // Every non-2xx fetch is logged as "Failed to load resource"; these steps ask for one.
  { phase: 'wrong password', text: /^Failed to load resource: the server responded with a status of 401\b/, path: '/api/login' },
  { phase: 'name taken', text: /^Failed to load resource: the server responded with a status of 409\b/, path: '/api/register' },
  // While the server is down (or closing) the page's probe of /api/me before each reconnect
  // fails, and Chromium logs that; probing with fetch first keeps WebSocket failures out.
  { phase: 'server down', text: /^Failed to load resource: net::ERR_CONNECTION_(REFUSED|RESET|CLOSED)$/, path: '/api/me' },
  { phase: 'server down', text: /^Failed to load resource: the server responded with a status of 503\b/, path: '/api/me' }
]

async function screenshot (page: Page, name: string): Promise<void> {
  await saveScreenshot(page, `${screenshotDir}/${name}.png`)
}

/** Ids strictly increasing and without a hole: each message once, nothing missed. */
function checkSequence (t: Test, items: LogItem[], who: string): void {
  const ids = items.map((item) => item.id)
  t.ok(ids.every((id) => id !== undefined), `${who}: every message is stored`)
  const numbers = ids as number[]
  const holes = numbers.slice(1).filter((id, i) => id !== (numbers[i] as number) + 1)
  t.same(holes, [], `${who}: ids ${numbers[0]}…${numbers.at(-1)} are consecutive, none twice`)
}

if (chromiumPath === undefined) {
  t.plan(0, 'skipped: no Chromium found (set CHROMIUM_PATH or install chromium)')
} else {
  t.test('the chat page in Chromium', async (t) => {
    mkdirSync(screenshotDir, { recursive: true })
    const config: Config = testConfig(t, {
      DATA_DIR: await migratedDataDir(t, 'canopy-browser-'),
      HISTORY_LIMIT: String(historyLimit),
      PUBLISH_BURST: '500',
      // Not the default: the page must take the limit from the server (/protocol.js).
      MAX_MESSAGE_CHARS: String(maxMessageChars)
    })
    let app = await buildApp(config)
    t.teardown(async () => { await app.close() })
    const port = await listen(app)
    const baseUrl = `http://127.0.0.1:${port}`

    // Earlier history: enough that the log has to load older pages when scrolled up.
    const bot = await register(app, uniqueName('bot'))
    const seedCount = 80
    for (let i = 1; i <= seedCount; i++) {
      const response = await app.inject({ method: 'POST', url: '/api/topics/general/messages', headers: { cookie: bot.cookie }, payload: { text: `Seed ${i}`, ref: `seed-${i}` } })
      if (response.statusCode !== 201) throw new Error(`seeding: ${response.statusCode} ${response.body}`)
    }

    // launch() runs Chromium on a fresh temporary profile (its own --user-data-dir), removed on close.
    const browser: Browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs })
    t.teardown(async () => { await browser.close() })

    const watch = new PageWatch()
    const openPage = async (label: string, options: { width: number, height: number, colorScheme: 'light' | 'dark', locale: string, timezoneId: string }): Promise<Page> => {
      const { width, height, ...rest } = options
      const context = await browser.newContext({ viewport: { width, height }, ...rest })
      return watch.watch(await context.newPage(), label)
    }

    const alice = await openPage('alice', { width: 1280, height: 800, colorScheme: 'light', locale: 'en-US', timezoneId: 'America/New_York' })
    const bob = await openPage('bob', { width: 360, height: 740, colorScheme: 'dark', locale: 'en-GB', timezoneId: 'Asia/Kolkata' })
    const aliceName = uniqueName('alice')
    const bobName = uniqueName('bob')

    await t.test('the login form says clearly what is wrong', async (t) => {
      await alice.goto(baseUrl)
      const name = alice.getByLabel('Name', { exact: true })
      const secret = alice.getByLabel('Password', { exact: true })
      await name.waitFor()
      t.ok(await alice.getByRole('button', { name: 'Log in', exact: true }).isVisible(), 'a Log in button')
      t.ok(await alice.getByRole('button', { name: 'Register', exact: true }).isVisible(), 'a Register button')
      t.match(new URL(alice.url()).hash, '#general', 'the default topic is in the hash')
      await screenshot(alice, 'login-wide-light')

      await alice.getByRole('button', { name: 'Register', exact: true }).click()
      await alice.getByRole('alert').getByText('Enter your name.').waitFor()
      await name.fill(aliceName)
      await secret.fill('short')
      await alice.getByRole('button', { name: 'Register', exact: true }).click()
      await alice.getByRole('alert').getByText('A password is at least 8 characters.').waitFor()

      watch.phase = 'wrong password'
      await secret.fill(password)
      await alice.getByRole('button', { name: 'Log in', exact: true }).click()
      // The API's own message: an unknown name and a wrong password look the same.
      await alice.getByRole('alert').getByText('Unknown name or wrong password').waitFor()
      await screenshot(alice, 'login-error-wide-light')
      watch.phase = 'alice registers'
      await alice.getByRole('button', { name: 'Register', exact: true }).click()
      await waitForConnection(alice, 'Connected')
      await waitForText(alice, `Seed ${seedCount}`)
      t.equal(await alice.locator('#user-name').textContent(), aliceName, 'the header shows who is logged in')
    })

    await t.test('a second person registers in another context; a taken name is refused', async (t) => {
      await bob.goto(baseUrl)
      await bob.getByLabel('Name', { exact: true }).waitFor()
      await screenshot(bob, 'login-narrow-dark')
      watch.phase = 'name taken'
      await bob.getByLabel('Name', { exact: true }).fill(aliceName.toUpperCase())
      await bob.getByLabel('Password', { exact: true }).fill(password)
      await bob.getByRole('button', { name: 'Register', exact: true }).click()
      await bob.getByRole('alert').getByText(`The name ${aliceName.toUpperCase()} is taken`).waitFor()
      watch.phase = 'bob registers'
      await bob.getByLabel('Name', { exact: true }).fill(bobName)
      await bob.getByRole('button', { name: 'Register', exact: true }).click()
      await waitForConnection(bob, 'Connected')
      await waitForText(bob, `Seed ${seedCount}`)
      await alice.locator('#members .member-name', { hasText: bobName }).waitFor()
      t.equal(await alice.locator('#messages .notice').count(), 0, 'alice sees that bob joined in the member list, not in the log')
    })

    await t.test('two people chat and see each other\'s names', async (t) => {
      watch.phase = 'chat'
      await send(alice, 'Hello Bob 👋')
      await waitForText(bob, 'Hello Bob 👋')
      await waitForAllSent(alice)
      const seenByBob = (await logItems(bob)).find((item) => item.text === 'Hello Bob 👋')
      t.equal(seenByBob?.author, aliceName, 'bob sees alice\'s name on her message')
      const own = (await logItems(alice)).find((item) => item.text === 'Hello Bob 👋')
      t.match(own, { author: aliceName, status: '', pending: false }, 'alice\'s message turned from pending to sent, and is no longer marked')

      // Shift+Enter is a new line, Enter sends.
      const input = bob.getByLabel('Message', { exact: true })
      await input.pressSequentially('line one')
      await input.press('Shift+Enter')
      await input.pressSequentially('line two')
      await input.press('Enter')
      await waitForText(alice, 'line one\nline two')
      t.equal(await input.inputValue(), '', 'the composer is empty after sending')
      const fromBob = (await logItems(alice)).find((item) => item.text === 'line one\nline two')
      t.equal(fromBob?.author, bobName, 'alice sees bob\'s name on his message')

      // Times are the reader's own: bob reads in en-GB on India time.
      const time = bob.locator('#messages .message', { hasText: 'Hello Bob' }).locator('time')
      const at = await time.getAttribute('datetime')
      const local = new Intl.DateTimeFormat('en-GB', { hour: 'numeric', minute: '2-digit', timeZone: 'Asia/Kolkata' }).format(new Date(at ?? ''))
      t.match(await time.textContent(), local, `bob sees ${at} as ${local}`)
    })

    await t.test('markup in a message is shown as text and never runs', async (t) => {
      const markup = '<img src=x onerror="window.pwned=1;alert(1)"> <b>not bold</b>'
      await send(alice, markup)
      await waitForText(bob, markup)
      t.equal(await bob.locator('#messages img, #messages b').count(), 0, 'no element was made from the text')
      t.equal(await bob.evaluate(() => (window as Window & { pwned?: number }).pwned), undefined, 'no handler ran')
      t.same(watch.dialogs, [], 'no dialog opened')
    })

    await t.test('the wide layout shows the lists beside the log, the narrow one folds them away, in either scheme', async (t) => {
      await waitForAllSent(alice)
      await waitForAllSent(bob)
      const background = async (page: Page): Promise<string> => await page.evaluate(() => getComputedStyle(document.body).backgroundColor)

      const topics = await alice.locator('#topics-panel').boundingBox()
      const log = await alice.locator('#log-scroller').boundingBox()
      const members = await alice.locator('#members-panel').boundingBox()
      t.ok(topics !== null && log !== null && members !== null, 'wide: the topic list, the log and who is here are all shown')
      if (topics !== null && log !== null && members !== null) {
        t.ok(topics.x + topics.width <= log.x + 0.5 && log.x + log.width <= members.x + 0.5, 'wide: side by side, left to right')
      }
      t.ok(await bob.locator('#topics-panel').isHidden() && await bob.locator('#members-panel').isHidden(), 'narrow: both lists are folded away')
      t.ok(await bob.locator('#topics-toggle').isVisible() && await bob.locator('#members-toggle').isVisible(), 'narrow: behind a button each')
      await screenshot(alice, 'chat-wide-light')
      await screenshot(bob, 'chat-narrow-dark')

      const light = await background(alice)
      await alice.emulateMedia({ colorScheme: 'dark' })
      t.not(await background(alice), light, 'the dark scheme has a background of its own')
      await screenshot(alice, 'chat-wide-dark')
      await alice.emulateMedia({ colorScheme: 'light' })
      const dark = await background(bob)
      await bob.emulateMedia({ colorScheme: 'light' })
      t.equal(await background(bob), light, 'the light scheme looks the same on both pages')
      t.not(dark, light, 'and differs from the dark one')
      await screenshot(bob, 'chat-narrow-light')
      await bob.emulateMedia({ colorScheme: 'dark' })
    })

    await t.test('the composer counts characters as the server does and refuses a longer message', async (t) => {
      watch.phase = 'message length'
      const input = alice.getByLabel('Message', { exact: true })
      const tooLong = 'x'.repeat(maxMessageChars + 1)
      await input.fill(tooLong)
      await input.press('Enter')
      await alice.getByRole('alert').getByText(`A message is at most ${maxMessageChars} characters; this one has ${maxMessageChars + 1}.`).waitFor()
      t.equal(await input.inputValue(), tooLong, 'the text stays in the box, to be shortened')
      t.notOk((await logItems(alice)).some((item) => item.text === tooLong), 'nothing was sent')
      await input.press('Backspace')
      t.equal(await alice.locator('#composer-error').textContent(), '', 'editing clears the error')

      // Code points, not UTF-16 units: each of these is two units and one character.
      const astral = '🌳'.repeat(maxMessageChars)
      await input.fill(astral)
      await input.press('Enter')
      await waitForText(bob, astral)
      await waitForAllSent(alice)
      t.match((await logItems(alice)).find((item) => item.text === astral), { status: '', pending: false }, 'the longest message is sent')
    })

    await t.test('a reload shows the history, each message once', async (t) => {
      await bob.reload()
      await waitForConnection(bob, 'Connected')
      await waitForText(bob, 'Hello Bob 👋')
      const texts = (await logItems(bob)).map((item) => item.text)
      const mine = ['Hello Bob 👋', 'line one\nline two', '<img src=x onerror="window.pwned=1;alert(1)"> <b>not bold</b>']
      t.same(texts.filter((text) => mine.includes(text)), mine, 'the conversation, in order, once')
      t.ok(texts.includes(`Seed ${seedCount}`), 'with the history before it')
      checkSequence(t, await logItems(bob), 'bob')
    })

    await t.test('scrolling to the top loads older history', async (t) => {
      await alice.reload()
      await waitForConnection(alice, 'Connected')
      await waitForText(alice, 'Hello Bob 👋')
      const start = alice.getByText('This is the start of #general.')
      const oldestId = async (): Promise<number> => Number(await alice.locator('#messages .message').first().getAttribute('data-id'))
      for (let round = 0; round < 5 && !await start.isVisible(); round++) {
        const before = await oldestId()
        await alice.locator('#log-scroller').hover()
        await alice.mouse.wheel(0, -100_000)
        await alice.waitForFunction((before) => {
          const first = document.querySelector<HTMLElement>('#messages .message')
          return Number(first?.dataset.id) < before || document.getElementById('history-start')?.hidden === false
        }, before, { timeout: waitMs })
      }
      await start.waitFor()
      const items = await logItems(alice)
      t.equal(items[0]?.text, 'Seed 1', 'back to the first message of the topic')
      checkSequence(t, items, 'alice')
    })

    await t.test('the topic picker and the URL hash switch topics', async (t) => {
      await alice.getByLabel('Topic', { exact: true }).fill('random')
      await alice.getByRole('button', { name: 'Join', exact: true }).click()
      await alice.getByText('No messages in #random yet. Say hello!').waitFor()
      t.equal(new URL(alice.url()).hash, '#random', 'the topic is in the hash')
      await waitForConnection(alice, 'Connected')
      await send(alice, 'Over in random')
      await waitForAllSent(alice)

      // Bob's screen is narrow: the topic list is folded away behind a button.
      await openTopicList(bob)
      await bob.getByLabel('Topic', { exact: true }).fill('Not a topic!')
      await bob.getByLabel('Topic', { exact: true }).press('Enter')
      await bob.getByRole('alert').getByText(/^A topic is up to 64 characters/).waitFor()
      t.equal(new URL(bob.url()).hash, '#general', 'a bad name changes nothing')
      await screenshot(bob, 'topic-error-narrow-dark')

      await bob.evaluate(() => { location.hash = '#random' })
      await waitForText(bob, 'Over in random')
      t.equal((await logItems(bob)).length, 1, 'only the messages of #random')

      await openTopicList(bob)
      await bob.locator('#joined-topics').getByRole('link', { name: /^#general\b/ }).click()
      await waitForText(bob, 'Hello Bob 👋')
      await alice.evaluate(() => { location.hash = '#general' })
      await waitForText(alice, 'Hello Bob 👋')
      t.notOk((await logItems(alice)).some((item) => item.text === 'Over in random'), 'nothing of #random in #general')
    })

    await t.test('after a server restart both pages reconnect; nothing is lost or doubled', async (t) => {
      watch.phase = 'server down'
      await app.close()
      await waitForConnection(alice, 'Reconnecting…')
      await waitForConnection(bob, 'Reconnecting…')

      const offline = 'Typed while the server was down'
      await send(alice, offline)
      const pending = (await logItems(alice)).find((item) => item.text === offline)
      t.match(pending, { pending: true, status: 'Sending…', id: undefined }, 'shown as pending meanwhile')
      await screenshot(alice, 'reconnecting-wide-light')

      // The same data directory and port; messages published before the pages are back
      // outnumber the history a subscription replays, so the pages must catch up with since.
      app = await buildApp(config)
      await app.ready()
      const missedCount = historyLimit + 5
      for (let i = 1; i <= missedCount; i++) {
        const response = await app.inject({ method: 'POST', url: '/api/topics/general/messages', headers: { cookie: bot.cookie }, payload: { text: `Missed ${i}`, ref: `missed-${i}` } })
        t.equal(response.statusCode, 201)
      }
      await listen(app, port)

      await waitForConnection(alice, 'Connected')
      await waitForConnection(bob, 'Connected')
      await waitForAllSent(alice)
      watch.phase = 'after restart'
      await waitForText(bob, offline)
      for (const page of [alice, bob]) {
        await waitForText(page, `Missed ${missedCount}`)
        await waitForText(page, 'Missed 1')
      }

      await send(bob, 'Back again')
      await waitForText(alice, 'Back again')
      await waitForAllSent(bob)

      for (const [who, page] of [['alice', alice], ['bob', bob]] as const) {
        const items = await logItems(page)
        checkSequence(t, items, who)
        for (const text of ['Hello Bob 👋', offline, 'Missed 1', `Missed ${missedCount}`, 'Back again']) {
          t.equal(items.filter((item) => item.text === text).length, 1, `${who} shows "${text}" once`)
        }
      }
      await screenshot(alice, 'after-restart-wide-light')
      await screenshot(bob, 'after-restart-narrow-dark')
    })

    await t.test('log out returns to the form, and stays there after a reload', async (t) => {
      watch.phase = 'log out'
      await bob.getByRole('button', { name: 'Log out', exact: true }).click()
      await bob.getByLabel('Name', { exact: true }).waitFor()
      await bob.reload()
      await bob.getByRole('button', { name: 'Log in', exact: true }).waitFor()
      t.ok(await bob.locator('#chat-view').isHidden(), 'the chat is hidden')
    })

    await t.test('logging in and chatting work with the keyboard alone', async (t) => {
      watch.phase = 'keyboard'
      await bob.waitForFunction(() => document.activeElement?.id === 'auth-name', undefined, { timeout: waitMs })
      await bob.keyboard.type(bobName)
      await bob.keyboard.press('Tab')
      await bob.keyboard.type(password)
      await bob.keyboard.press('Enter')
      await waitForConnection(bob, 'Connected')
      t.ok(await bob.getByLabel('Message', { exact: true }).evaluate((input) => input === document.activeElement), 'the composer has the focus')
      await bob.keyboard.type('Typed with the keyboard alone')
      await bob.keyboard.press('Enter')
      await waitForText(alice, 'Typed with the keyboard alone')
    })

    await t.test('logging out in one tab ends the session in the others', async (t) => {
      const secondTab = watch.watch(await alice.context().newPage(), 'alice 2')
      await secondTab.goto(`${baseUrl}/#general`)
      await waitForConnection(secondTab, 'Connected')
      await secondTab.getByRole('button', { name: 'Log out', exact: true }).click()
      await alice.getByRole('alert').getByText('Your session has ended. Log in again.').waitFor()
      t.ok(await alice.getByLabel('Name', { exact: true }).isVisible(), 'the first tab shows the login form')
      await secondTab.close()
    })

    await t.test('no errors in the browser console', async (t) => {
      const unexpected = watch.unexpected(expectedConsoleErrors, baseUrl)
      t.same(unexpected, [], 'only the network errors Chromium logs for the failures this test causes')
      t.comment(`expected network errors logged by Chromium: ${watch.errors.length - unexpected.length}`)
      for (const error of watch.errors) t.comment(`  ${error.page} (${error.phase}): ${error.text} ${error.url}`)
      t.same(watch.dialogs, [], 'no dialogs')
    })
  })
}
