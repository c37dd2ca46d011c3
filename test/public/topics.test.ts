import t from 'tap'
import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { buildApp } from '../../server/app.js'
import { projectRoot } from '../../src/paths.js'
import { migratedDataDir, register, testConfig, uniqueName } from '../helpers/app.js'
import { chromiumArgs, chromiumPath, listen, logIn, logItems, openTopicList, PageWatch, screenshot, send, waitForAllSent, waitForConnection, waitForText, waitMs, type ExpectedError } from '../helpers/page.js'

/**
 * The page beyond one topic, in Chromium: the topic list with unread counts that the server
 * keeps, the count in the tab's title, who is here now, links in messages, the hint to
 * register, and the lists folded away on a narrow screen, used with the keyboard.
 */

const screenshotDir = fileURLToPath(new URL('test-output/screenshots/', projectRoot))
const password = 'correct horse battery'

/** Chromium logs every non-2xx fetch; this one the test asks for. The page logs nothing. */
const expectedConsoleErrors: ExpectedError[] = [
  { phase: 'unknown name', text: /^Failed to load resource: the server responded with a status of 401\b/, path: '/api/login' }
]

/** The item of `topic` in the list of joined topics, and its unread badge. */
function joinedTopic (page: Page, topic: string): { link: ReturnType<Page['locator']>, badge: ReturnType<Page['locator']> } {
  const link = page.locator(`#joined-topics a[data-topic="${topic}"]`)
  return { link, badge: link.locator('.badge') }
}

/** The names in the member list, as shown. */
async function memberNames (page: Page): Promise<string[]> {
  return await page.locator('#members .member-name').allTextContents()
}

async function waitForMembers (page: Page, names: string[]): Promise<void> {
  await page.waitForFunction((names) => {
    const shown = Array.from(document.querySelectorAll('#members .member-name'), (node) => node.textContent)
    return JSON.stringify(shown) === JSON.stringify(names) && document.getElementById('members-count')?.textContent === String(names.length)
  }, names, { timeout: waitMs })
}

async function waitForTitle (page: Page, title: string): Promise<void> {
  await page.waitForFunction((title) => document.title === title, title, { timeout: waitMs })
}

if (chromiumPath === undefined) {
  t.plan(0, 'skipped: no Chromium found (set CHROMIUM_PATH or install chromium)')
} else {
  t.test('topics, unread counts, who is here, links', async (t) => {
    mkdirSync(screenshotDir, { recursive: true })
    const app = await buildApp(testConfig(t, { DATA_DIR: await migratedDataDir(t, 'canopy-topics-') }))
    t.teardown(async () => { await app.close() })
    const baseUrl = `http://127.0.0.1:${await listen(app)}`

    const aliceName = uniqueName('alice')
    const bob = await register(app, uniqueName('bob'), password)
    const carol = await register(app, uniqueName('carol'), password)
    let posted = 0
    const post = async (who: { cookie: string }, topic: string, text: string): Promise<number> => {
      const response = await app.inject({ method: 'POST', url: `/api/topics/${topic}/messages`, headers: { cookie: who.cookie }, payload: { text, ref: `post-${++posted}` } })
      if (response.statusCode !== 201) throw new Error(`publishing: ${response.statusCode} ${response.body}`)
      return response.json<{ message: { id: number } }>().message.id
    }
    // A topic alice never reads: listed by the server, not joined.
    await post(carol, 'gardening', 'Tomatoes are in')

    const browser: Browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs })
    t.teardown(async () => { await browser.close() })

    const pages = new PageWatch()
    const watch = (page: Page, label: string): Page => pages.watch(page, label)
    const newContext = async (width: number, height: number, colorScheme: 'light' | 'dark'): Promise<BrowserContext> =>
      await browser.newContext({ viewport: { width, height }, colorScheme, locale: 'en-US', timezoneId: 'Europe/Paris' })

    const aliceContext = await newContext(1280, 800, 'light')
    const alice = watch(await aliceContext.newPage(), 'alice')
    const bobPage = watch(await (await newContext(360, 740, 'dark')).newPage(), 'bob')

    await t.test('an unknown name gets the hint to register, which registers', async (t) => {
      await alice.goto(`${baseUrl}/#b`)
      await alice.getByLabel('Name', { exact: true }).fill(aliceName)
      await alice.getByLabel('Password', { exact: true }).fill(password)
      const hint = alice.getByText('No account with that name and password?')
      t.ok(await hint.isHidden(), 'no hint before trying')
      pages.phase = 'unknown name'
      await alice.getByRole('button', { name: 'Log in', exact: true }).click()
      await alice.getByRole('alert').getByText('Unknown name or wrong password').waitFor()
      await hint.waitFor()
      await screenshot(alice, `${screenshotDir}/login-register-hint-wide-light.png`)
      pages.phase = 'register from the hint'
      await alice.getByRole('button', { name: 'Register instead', exact: true }).click()
      await waitForConnection(alice, 'Connected')
      t.equal(await alice.locator('#user-name').textContent(), aliceName, 'registered and logged in under the name typed')
    })

    await t.test('a new topic says where it starts; a mistake in the topic form clears', async (t) => {
      pages.phase = 'topic b'
      await alice.getByText('No messages in #b yet. Say hello!').waitFor()
      await send(alice, 'First in b')
      await waitForAllSent(alice)
      // Fewer messages than a subscription replays: the server has nothing older.
      await alice.getByText('This is the start of #b.').waitFor()
      t.ok(await alice.locator('#load-older').isHidden(), 'no button to load older messages')

      const topicInput = alice.getByLabel('Topic', { exact: true })
      const topicError = alice.locator('#topic-error')
      await topicInput.fill('Not a topic!')
      await topicInput.press('Enter')
      await alice.getByRole('alert').getByText(/^A topic is up to 64 characters/).waitFor()
      await topicInput.press('Backspace')
      t.equal(await topicError.textContent(), '', 'typing clears the error')
      t.equal(await topicInput.getAttribute('aria-invalid'), null, 'the input is no longer marked invalid')

      await topicInput.fill('Still not one!')
      await topicInput.press('Enter')
      await alice.getByRole('alert').getByText(/^A topic is up to 64 characters/).waitFor()
      await joinedTopic(alice, 'general').link.click()
      await alice.getByRole('heading', { name: '#general', exact: true }).waitFor()
      t.equal(await topicError.textContent(), '', 'moving to another topic by a link clears the error')

      await topicInput.fill('a')
      await topicInput.press('Enter')
      await alice.getByText('No messages in #a yet. Say hello!').waitFor()
      t.same(await alice.locator('#joined-topics a').evaluateAll((links) => links.map((link) => link.dataset.topic)), ['a', 'b', 'general'],
        'the topics opened are joined, by name')
      t.same(await alice.locator('#more-topics a').evaluateAll((links) => links.map((link) => link.dataset.topic)), ['gardening'],
        'the other topics of the server are listed apart')
    })

    await t.test('who is here: both people, then one when the other leaves', async (t) => {
      pages.phase = 'members'
      await waitForMembers(alice, [aliceName])
      await bobPage.goto(`${baseUrl}/#a`)
      await logIn(bobPage, bob.username, password)
      await waitForMembers(alice, [aliceName, bob.username].sort())
      t.equal(await alice.locator('#members-toggle').getAttribute('aria-expanded'), 'true', 'beside the log on a wide screen')

      // Bob's screen is narrow: the list is folded away behind a button showing the count, opened by keyboard.
      const toggle = bobPage.getByRole('button', { name: /here now/ })
      await bobPage.waitForFunction(() => document.getElementById('members-count')?.textContent === '2', undefined, { timeout: waitMs })
      t.ok(await bobPage.locator('#members-panel').isHidden(), 'folded away at 360 px')
      await toggle.focus()
      await bobPage.keyboard.press('Enter')
      await bobPage.locator('#members-panel').waitFor()
      t.same(await memberNames(bobPage), [aliceName, bob.username].sort(), 'bob sees both')
      t.match(await bobPage.locator('#members .member', { hasText: bob.username }).textContent(), '(you)', 'his own name is marked')
      await screenshot(bobPage, `${screenshotDir}/members-narrow-dark.png`)
      await bobPage.emulateMedia({ colorScheme: 'light' })
      await screenshot(bobPage, `${screenshotDir}/members-narrow-light.png`)
      await bobPage.emulateMedia({ colorScheme: 'dark' })
      await bobPage.keyboard.press('Escape')
      await bobPage.locator('#members-panel').waitFor({ state: 'hidden' })
      t.ok(await toggle.evaluate((button) => button === document.activeElement), 'Escape folds it and gives the focus back to the button')

      await bobPage.close()
      await waitForMembers(alice, [aliceName])
      t.pass('bob left alice\'s list when his page closed')
      t.equal(await alice.locator('#messages .notice').count(), 0, 'neither his coming nor his going is a line in the log')
    })

    await t.test('unread counts rise live for a joined topic, and the title shows them', async (t) => {
      pages.phase = 'unread'
      const b = joinedTopic(alice, 'b')
      t.ok(await b.badge.isHidden(), 'nothing unread in b yet')
      await post(bob, 'b', 'One for b')
      await b.badge.getByText('1', { exact: true }).waitFor()
      await waitForTitle(alice, '(1) #a · Canopy')
      await post(bob, 'b', 'Two for b')
      await b.badge.getByText('2', { exact: true }).waitFor()
      await waitForTitle(alice, '(2) #a · Canopy')
      t.equal(await b.link.getAttribute('class'), 'topic-link has-unread', 'b stands out')
      t.equal(await joinedTopic(alice, 'a').badge.isHidden(), true, 'the open topic has nothing unread')
      t.notOk((await logItems(alice)).some((item) => item.text.endsWith('for b')), 'b\'s messages are not in a\'s log')
      await screenshot(alice, `${screenshotDir}/unread-wide-light.png`)
      await alice.emulateMedia({ colorScheme: 'dark' })
      await screenshot(alice, `${screenshotDir}/unread-wide-dark.png`)
      await alice.emulateMedia({ colorScheme: 'light' })

      // The count is the server's: a reload shows it again.
      await alice.reload()
      await waitForConnection(alice, 'Connected')
      await b.badge.getByText('2', { exact: true }).waitFor()
      await waitForTitle(alice, '(2) #a · Canopy')
      t.pass('after a reload, b still has 2 unread')
    })

    await t.test('opening a topic reads it, on the server too', async (t) => {
      pages.phase = 'read'
      const b = joinedTopic(alice, 'b')
      const marked = alice.waitForResponse((response) => response.request().method() === 'PUT' && new URL(response.url()).pathname === '/api/topics/b/read')
      await b.link.click()
      await waitForText(alice, 'Two for b')
      await b.badge.waitFor({ state: 'hidden' })
      await waitForTitle(alice, '#b · Canopy')
      const response = await marked
      t.equal(response.status(), 204, 'the read position was stored')
      const lastId = (await logItems(alice)).at(-1)?.id
      t.same(response.request().postDataJSON(), { id: lastId }, 'up to the last message shown')

      await alice.reload()
      await waitForConnection(alice, 'Connected')
      await waitForText(alice, 'Two for b')
      t.ok(await b.badge.isHidden(), 'after a reload, b is read')
      t.equal(await alice.title(), '#b · Canopy', 'and the title counts nothing')

      // Alice's other browser: the read position follows her; b and a are hers there too.
      pages.phase = 'another browser'
      const other = watch(await (await newContext(360, 740, 'light')).newPage(), 'alice elsewhere')
      await other.goto(`${baseUrl}/#general`)
      await logIn(other, aliceName, password)
      await openTopicList(other)
      await joinedTopic(other, 'b').link.waitFor()
      t.ok(await joinedTopic(other, 'b').badge.isHidden(), 'b is read in the other browser')
      t.ok(await other.locator('#more-topics a[data-topic="gardening"]').isVisible(), 'a topic never read is not joined')
      await screenshot(other, `${screenshotDir}/topics-narrow-light.png`)
      await other.emulateMedia({ colorScheme: 'dark' })
      await screenshot(other, `${screenshotDir}/topics-narrow-dark.png`)
      await other.emulateMedia({ colorScheme: 'light' })

      // While the list is folded away, its button carries the count.
      await other.keyboard.press('Escape')
      await other.locator('#topics-panel').waitFor({ state: 'hidden' })
      t.ok(await other.locator('#topics-toggle').evaluate((button) => button === document.activeElement), 'Escape folds the list, focus on its button')
      await post(bob, 'b', 'Three for b')
      await other.locator('#topics-toggle .badge').getByText('1', { exact: true }).waitFor()
      await waitForTitle(other, '(1) #general · Canopy')
      t.equal(await other.getByRole('button', { name: 'Topics 1 unread', exact: true }).count(), 1, 'the button says how many are unread')
      await screenshot(other, `${screenshotDir}/unread-narrow-light.png`)
      await other.emulateMedia({ colorScheme: 'dark' })
      await screenshot(other, `${screenshotDir}/unread-narrow-dark.png`)
      await other.emulateMedia({ colorScheme: 'light' })

      // Keyboard alone: the list opens on the open topic; Tab reaches the others.
      await other.keyboard.press('Enter')
      await other.locator('#topics-panel').waitFor()
      t.ok(await joinedTopic(other, 'general').link.evaluate((link) => link === document.activeElement), 'the open topic has the focus')
      await joinedTopic(other, 'b').link.focus()
      await other.keyboard.press('Enter')
      await waitForText(other, 'Three for b')
      await other.locator('#topics-panel').waitFor({ state: 'hidden' })
      await waitForTitle(other, '#b · Canopy')
      await screenshot(other, `${screenshotDir}/chat-topic-narrow-light.png`)
      await other.close()
    })

    await t.test('a web address is a safe link; markup stays text', async (t) => {
      pages.phase = 'links'
      const text = 'Docs: https://example.com/a_(b)?q=1&r=2. Not <b>bold</b>, not javascript:alert(1), not http://'
      await post(bob, 'b', text)
      await waitForText(alice, text)
      const message = alice.locator('#messages .message', { hasText: 'Docs:' }).locator('.text')
      const links = await message.locator('a').evaluateAll((anchors) => anchors.map((a) => ({
        href: a.getAttribute('href'), text: a.textContent, rel: a.getAttribute('rel'), target: a.getAttribute('target')
      })))
      t.same(links, [{ href: 'https://example.com/a_(b)?q=1&r=2', text: 'https://example.com/a_(b)?q=1&r=2', rel: 'noopener noreferrer', target: '_blank' }],
        'one link, without the full stop after it')
      t.equal(await message.locator('b').count(), 0, 'no element made from the markup')
      t.equal(await message.textContent(), text, 'the text is shown as it was sent')
      await screenshot(alice, `${screenshotDir}/links-wide-light.png`)
      await alice.emulateMedia({ colorScheme: 'dark' })
      await screenshot(alice, `${screenshotDir}/links-wide-dark.png`)
      await alice.emulateMedia({ colorScheme: 'light' })
    })

    await t.test('the open topic counts as unread while the tab is hidden', async (t) => {
      pages.phase = 'hidden tab'
      // Headless Chromium never hides a tab: the page is told it is hidden as a browser would tell it.
      const setVisibility = async (state: 'hidden' | 'visible'): Promise<void> => {
        await alice.evaluate((state) => {
          Object.defineProperty(document, 'visibilityState', { value: state, configurable: true })
          document.dispatchEvent(new Event('visibilitychange'))
        }, state)
      }
      await waitForTitle(alice, '#b · Canopy')
      await setVisibility('hidden')
      const id = await post(bob, 'b', 'While you were away')
      await waitForText(alice, 'While you were away')
      await waitForTitle(alice, '(1) #b · Canopy')
      t.pass('the title counts a message of the open topic that nobody saw')
      const marked = alice.waitForResponse((response) => response.request().method() === 'PUT' && new URL(response.url()).pathname === '/api/topics/b/read')
      await setVisibility('visible')
      await waitForTitle(alice, '#b · Canopy')
      const response = await marked
      t.same(response.request().postDataJSON(), { id }, 'seen once the tab is back: read up to it')
    })

    await t.test('no errors in the browser console', async (t) => {
      t.same(pages.unexpected(expectedConsoleErrors, baseUrl), [], 'only the network error Chromium logs for the refused login')
      for (const error of pages.errors) t.comment(`  ${error.page} (${error.phase}): ${error.text} ${error.url}`)
      t.same(pages.dialogs, [], 'no dialogs')
    })
  })
}
