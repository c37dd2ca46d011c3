import t from 'tap'
import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { buildApp } from '../../server/app.js'
import { projectRoot } from '../../src/paths.js'
import { register, tempDir, testConfig, uniqueName } from '../helpers/app.js'
import { chromiumArgs, chromiumPath, listen, logIn, openMemberList, openTopicList, PageWatch, screenshot, send, waitForAllSent, waitForNotice, waitForText, waitMs, type ExpectedError } from '../helpers/page.js'

/**
 * Private topics and direct messages in the page, in Chromium, with two people in two
 * browsers: alice creates a private topic (by keyboard), adds bob by name (an unknown name
 * says so), and bob sees it appear at once; the last owner cannot leave; alice removes bob,
 * whose page says so and leaves the topic; bob, added again, leaves by himself; a topic he is
 * not a member of is refused in plain words; alice starts a direct message from bob's name in
 * who is here, and bob finds it under her name, apart from the topics.
 */

const screenshotDir = fileURLToPath(new URL('test-output/screenshots/', projectRoot))
const password = 'correct horse battery'

/** The members of the open private topic, as shown. */
async function rosterNames (page: Page): Promise<string[]> {
  return await page.locator('#roster-list .member-name').allTextContents()
}

async function waitForRoster (page: Page, names: string[]): Promise<void> {
  await page.waitForFunction((names) => JSON.stringify(Array.from(document.querySelectorAll('#roster-list .member-name'), (node) => node.textContent)) === JSON.stringify(names),
    names, { timeout: waitMs })
}

/** Waits until an owner's choice of `name`'s role says `role`, and no change is on its way. */
async function waitForRole (page: Page, name: string, role: string): Promise<void> {
  await page.waitForFunction(([name, role]) => {
    const choice = document.querySelector<HTMLSelectElement>(`select[aria-label="Role of ${name}"]`)
    return choice?.value === role && document.getElementById('roster')?.getAttribute('aria-busy') === null
  }, [name, role] as const, { timeout: waitMs })
}

async function waitForHeading (page: Page, name: string): Promise<void> {
  await page.getByRole('heading', { name, exact: true, level: 2 }).waitFor()
}

if (chromiumPath === undefined) {
  t.plan(0, 'skipped: no Chromium found (set CHROMIUM_PATH or install chromium)')
} else {
  t.test('private topics and direct messages', async (t) => {
    mkdirSync(screenshotDir, { recursive: true })
    const app = await buildApp(testConfig(t, { DATA_DIR: tempDir(t, 'canopy-private-') }))
    t.teardown(async () => { await app.close() })
    const baseUrl = `http://127.0.0.1:${await listen(app)}`

    const alice = await register(app, uniqueName('alice'), password)
    const bob = await register(app, uniqueName('bob'), password)
    const nobody = uniqueName('nobody')
    // As long as a topic name may be: cut in the lists, whole on hover.
    const secret = `secret-${process.pid}-a-private-topic-with-a-long-name-`.padEnd(64, 'x')
    const membersOf = async (topic: string): Promise<unknown> =>
      (await app.inject({ url: `/api/topics/${topic}/members`, headers: { cookie: alice.cookie } })).json()

    /** Chromium logs every non-2xx fetch; these the test asks for. The page logs nothing. */
    const expectedConsoleErrors: ExpectedError[] = [
      { phase: 'refusals', text: /status of 409\b/, path: '/api/topics' },
      { phase: 'unknown name', text: /status of 404\b/, path: `/api/topics/${secret}/members/${nobody}` },
      { phase: 'last owner', text: /status of 409\b/, path: `/api/topics/${secret}/members/${alice.username}` }
    ]

    const browser: Browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs })
    t.teardown(async () => { await browser.close() })
    const pages = new PageWatch()
    const newContext = async (width: number, height: number, colorScheme: 'light' | 'dark'): Promise<BrowserContext> =>
      await browser.newContext({ viewport: { width, height }, colorScheme, locale: 'en-US', timezoneId: 'Europe/Paris' })
    const alicePage = pages.watch(await (await newContext(1280, 800, 'light')).newPage(), 'alice')
    const bobPage = pages.watch(await (await newContext(360, 740, 'dark')).newPage(), 'bob')
    await alicePage.goto(`${baseUrl}/#general`)
    await logIn(alicePage, alice.username, password)
    await bobPage.goto(`${baseUrl}/#general`)
    await logIn(bobPage, bob.username, password)

    const bobsLink = bobPage.locator(`#joined-topics a[data-topic="${secret}"]`)

    await t.test('alice creates a private topic with the keyboard alone', async (t) => {
      pages.phase = 'create'
      const toggle = alicePage.getByRole('button', { name: 'New topic', exact: true })
      await toggle.focus()
      await alicePage.keyboard.press('Enter')
      const name = alicePage.getByLabel('Name of the new topic', { exact: true })
      t.ok(await name.evaluate((input) => input === document.activeElement), 'the form opens on its name')
      t.ok(await alicePage.getByRole('radio', { name: /^Private/ }).isChecked(), 'private unless the reader says otherwise')
      await alicePage.keyboard.type(secret)
      await alicePage.keyboard.press('Enter')
      await waitForHeading(alicePage, `#${secret}`)
      t.ok(await alicePage.locator('#topic-lock').isVisible(), 'the open topic has a lock')
      t.ok(await alicePage.locator(`#joined-topics a[data-topic="${secret}"] .topic-lock`).isVisible(), 'and so has its item in the list')
      t.ok(await alicePage.locator('#new-topic-form').isHidden(), 'the form folds away')
      await waitForRoster(alicePage, [alice.username])
      t.equal(await alicePage.locator('#roster-list .member-role').textContent(), 'owner, you', 'its creator is its owner')
      t.same(await membersOf(secret), { visibility: 'private', members: [{ name: alice.username, role: 'owner' }] }, 'on the server too')
      await send(alicePage, 'Only for members')
      await waitForAllSent(alicePage)
    })

    await t.test('a name taken or kept for direct messages is refused in plain words', async (t) => {
      pages.phase = 'refusals'
      await alicePage.getByRole('button', { name: 'New topic', exact: true }).click()
      const name = alicePage.getByLabel('Name of the new topic', { exact: true })
      const error = alicePage.locator('#new-topic-error')
      await name.fill(secret)
      await name.press('Enter')
      await error.getByText(`There is already a topic called #${secret}. Choose another name.`, { exact: true }).waitFor()
      t.equal(await name.getAttribute('aria-invalid'), 'true', 'the name is marked')
      await name.fill('dm.mine')
      await name.press('Enter')
      await error.getByText('Names that begin with “dm.” are kept for direct messages.', { exact: true }).waitFor()
      await name.press('Escape')
      await alicePage.locator('#new-topic-form').waitFor({ state: 'hidden' })
      t.ok(await alicePage.getByRole('button', { name: 'New topic', exact: true }).evaluate((button) => button === document.activeElement),
        'Escape folds the form, the focus back on its button')
    })

    await t.test('an unknown name says so; bob, added, sees the topic at once', async (t) => {
      pages.phase = 'unknown name'
      const add = alicePage.getByLabel('Add a member', { exact: true })
      await add.fill(nobody)
      await add.press('Enter')
      await alicePage.locator('#roster-error').getByText(`Nobody is called “${nobody}”. Check the spelling of the name.`, { exact: true }).waitFor()
      t.same(await rosterNames(alicePage), [alice.username], 'nobody was added')

      pages.phase = 'add'
      await add.fill(bob.username)
      await add.press('Enter')
      await waitForRoster(alicePage, [alice.username, bob.username].sort())
      t.equal(await add.inputValue(), '', 'the form is ready for the next name')
      await screenshot(alicePage, `${screenshotDir}/private-owner-wide-light.png`)
      await bobsLink.waitFor({ state: 'attached' })
      await waitForNotice(bobPage, `${alice.username} added you to #${secret}.`)
      t.pass('bob\'s list has the topic, and his page says who added him')

      await openTopicList(bobPage)
      t.ok(await bobsLink.locator('.topic-lock').isVisible(), 'with a lock')
      const cut = await bobsLink.locator('.topic-name').evaluate((label: HTMLElement) => ({ cut: label.scrollWidth > label.clientWidth, title: label.title }))
      t.same(cut, { cut: true, title: `#${secret}` }, 'its long name is cut at 360 px and whole on hover')
      await screenshot(bobPage, `${screenshotDir}/private-topic-added-narrow-dark.png`)
      await bobsLink.click()
      await waitForHeading(bobPage, `#${secret}`)
      await waitForText(bobPage, 'Only for members')
      t.pass('bob reads the topic')

      await openMemberList(bobPage)
      await waitForRoster(bobPage, [alice.username, bob.username].sort())
      t.ok(await bobPage.locator('#roster-add').isHidden(), 'a member cannot add anyone')
      t.equal(await bobPage.locator('#roster-list select').count(), 0, 'nor change a role')
      t.ok(await bobPage.getByRole('button', { name: `Leave #${secret}`, exact: true }).isVisible(), 'but may leave')
      await screenshot(bobPage, `${screenshotDir}/private-members-narrow-dark.png`)
      await bobPage.emulateMedia({ colorScheme: 'light' })
      await screenshot(bobPage, `${screenshotDir}/private-members-narrow-light.png`)
      await bobPage.emulateMedia({ colorScheme: 'dark' })
      await bobPage.locator('#members-close').click()
    })

    await t.test('an owner changes a role; the only owner cannot leave while others stay', async (t) => {
      pages.phase = 'role'
      const role = alicePage.getByLabel(`Role of ${bob.username}`, { exact: true })
      await role.selectOption('owner')
      await waitForRole(alicePage, bob.username, 'owner')
      t.same(await membersOf(secret), { visibility: 'private', members: [{ name: alice.username, role: 'owner' }, { name: bob.username, role: 'owner' }] },
        'bob is an owner on the server')
      await role.selectOption('member')
      await waitForRole(alicePage, bob.username, 'member')

      pages.phase = 'last owner'
      await alicePage.getByRole('button', { name: `Leave #${secret}`, exact: true }).click()
      await alicePage.locator('#roster-error').getByText(`You are the only owner of #${secret}. Make another member an owner first, or remove the other members, then leave.`, { exact: true }).waitFor()
      await waitForHeading(alicePage, `#${secret}`)
      t.pass('refused, and said why')
    })

    await t.test('removed, bob\'s page says so and leaves the topic', async (t) => {
      pages.phase = 'remove'
      await alicePage.getByRole('button', { name: `Remove ${bob.username} from #${secret}`, exact: true }).click()
      await waitForRoster(alicePage, [alice.username])
      await waitForNotice(bobPage, `You were removed from #${secret}: only its members can read it.`)
      await waitForHeading(bobPage, '#general')
      await bobsLink.waitFor({ state: 'detached' })
      t.pass('bob is back in #general and the topic is gone from his list')
      t.notOk((await bobPage.locator('#messages .text').allTextContents()).includes('Only for members'), 'nothing of it stays on his screen')
      await screenshot(bobPage, `${screenshotDir}/private-removed-narrow-dark.png`)
    })

    await t.test('added again, bob leaves by himself', async (t) => {
      pages.phase = 'leave'
      const add = alicePage.getByLabel('Add a member', { exact: true })
      await add.fill(bob.username)
      await add.press('Enter')
      await bobsLink.waitFor({ state: 'attached' })
      await openTopicList(bobPage)
      await bobsLink.click()
      await waitForText(bobPage, 'Only for members')
      await openMemberList(bobPage)
      await bobPage.getByRole('button', { name: `Leave #${secret}`, exact: true }).click()
      await waitForNotice(bobPage, `You left #${secret}.`)
      await waitForHeading(bobPage, '#general')
      await bobsLink.waitFor({ state: 'detached' })
      t.ok(await bobPage.getByLabel('Message', { exact: true }).evaluate((input) => input === document.activeElement), 'the focus is in the composer')
      t.same(await membersOf(secret), { visibility: 'private', members: [{ name: alice.username, role: 'owner' }] }, 'he is no member on the server')
    })

    await t.test('a private topic bob is not a member of is refused in plain words', async (t) => {
      pages.phase = 'forbidden'
      await bobPage.evaluate((topic) => { location.hash = `#${topic}` }, secret)
      await waitForNotice(bobPage, `#${secret} is private: only its members can read it.`)
      await waitForHeading(bobPage, '#general')
      t.notOk((await bobPage.locator('#messages .text').allTextContents()).includes('Only for members'), 'nothing of it shows')
      await bobPage.getByRole('button', { name: 'Dismiss', exact: true }).click()
      t.equal(await bobPage.locator('#page-notice-text').textContent(), '', 'the notice can be dismissed')
    })

    await t.test('a direct message started from a name, listed apart under the other person\'s name', async (t) => {
      pages.phase = 'direct message'
      await alicePage.locator('#joined-topics a[data-topic="general"]').click()
      await waitForHeading(alicePage, '#general')
      const message = alicePage.locator('#members').getByRole('button', { name: `Message ${bob.username}`, exact: true })
      await message.click()
      await waitForHeading(alicePage, bob.username)
      const aliceDm = alicePage.locator('#dm-topics a')
      t.equal(await aliceDm.count(), 1, 'alice has one direct message')
      const topic = await aliceDm.getAttribute('data-topic') ?? ''
      t.match(topic, /^dm\./, 'a direct-message topic')
      t.equal(await aliceDm.locator('.topic-name').textContent(), bob.username, 'listed under bob\'s name')
      t.ok(await alicePage.locator(`#joined-topics a[data-topic="${topic}"]`).count() === 0, 'not among the topics')
      await send(alicePage, 'Hello, just you')
      await waitForAllSent(alicePage)

      await waitForNotice(bobPage, `${alice.username} started a direct message with you.`)
      const bobDm = bobPage.locator(`#dm-topics a[data-topic="${topic}"]`)
      await bobDm.locator('.topic-name').getByText(alice.username, { exact: true }).waitFor({ state: 'attached' })
      await openTopicList(bobPage)
      t.ok(await bobPage.getByRole('heading', { name: 'Direct messages', exact: true }).isVisible(), 'under its own heading')
      t.notOk((await bobPage.locator('#topics-panel').textContent())?.includes('dm.'), 'no dm.… name shows')
      await screenshot(bobPage, `${screenshotDir}/direct-messages-narrow-dark.png`)
      await bobDm.click()
      await waitForHeading(bobPage, alice.username)
      await waitForText(bobPage, 'Hello, just you')
      await send(bobPage, 'Hello back')
      await waitForText(alicePage, 'Hello back')
      t.equal(await bobPage.getByLabel('Message', { exact: true }).getAttribute('placeholder'), `Message ${alice.username}`, 'the composer names alice')
      await screenshot(bobPage, `${screenshotDir}/direct-message-narrow-dark.png`)
    })

    await t.test('no errors in the browser console', async (t) => {
      t.same(pages.unexpected(expectedConsoleErrors, baseUrl), [], 'only the network errors Chromium logs for the refusals asked for')
      for (const error of pages.errors) t.comment(`  ${error.page} (${error.phase}): ${error.text} ${error.url}`)
      t.same(pages.dialogs, [], 'no dialogs')
    })
  })
}
