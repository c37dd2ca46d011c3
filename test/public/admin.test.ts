import t from 'tap'
import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { buildApp } from '../../server/app.js'
import { projectRoot } from '../../src/paths.js'
import { hashPassword } from '../../src/passwords.js'
import { createUser, setAdmin } from '../../src/users.js'
import { register, tempDir, testConfig, uniqueName } from '../helpers/app.js'
import { chromiumArgs, chromiumPath, listen, logIn, PageWatch, screenshot, waitForConnection, waitMs, type ExpectedError } from '../helpers/page.js'

/**
 * The account dialog and the users page of administrators, in Chromium: carol changes her
 * password (a wrong current one is refused in plain words) and her other session drops to
 * the login form; an administrator pages through the users, disables carol, whose page drops
 * to the login form and whose login is refused in plain words, enables her again and creates
 * an account; registration, closed, says so.
 */

const screenshotDir = fileURLToPath(new URL('test-output/screenshots/', projectRoot))
const password = 'correct horse battery'
const newPassword = 'a new password for carol'
const endedText = 'Your session has ended. Log in again.'

/** Waits until the page shows the login form, saying `text`. */
async function waitForLoginForm (page: Page, text: string): Promise<void> {
  await page.locator('#auth-view').waitFor()
  await page.locator('#auth-error').getByText(text, { exact: true }).waitFor()
}

/** Logs in through the form, expecting a refusal that says `text`. */
async function refusedLogin (page: Page, name: string, secret: string, text: string): Promise<void> {
  await page.getByLabel('Name', { exact: true }).fill(name)
  await page.getByLabel('Password', { exact: true }).fill(secret)
  await page.getByRole('button', { name: 'Log in', exact: true }).click()
  await page.locator('#auth-error').getByText(text, { exact: true }).waitFor()
}

if (chromiumPath === undefined) {
  t.plan(0, 'skipped: no Chromium found (set CHROMIUM_PATH or install chromium)')
} else {
  t.test('the account dialog and the users page', async (t) => {
    mkdirSync(screenshotDir, { recursive: true })
    const app = await buildApp(testConfig(t, { DATA_DIR: tempDir(t, 'canopy-admin-') }))
    t.teardown(async () => { await app.close() })
    const baseUrl = `http://127.0.0.1:${await listen(app)}`

    const admin = await register(app, uniqueName('admin'), password)
    await setAdmin(app.db, admin.username, true)
    const carol = await register(app, uniqueName('carol'), password)
    const erin = uniqueName('erin')
    // More accounts than a page of the users page holds: after admin and carol by name.
    const hash = await hashPassword(password)
    const fillerPrefix = uniqueName('filler')
    for (let index = 0; index < 100; index += 1) await createUser(app.db.orm, `${fillerPrefix}_${String(index).padStart(3, '0')}`, hash)

    /** Chromium logs every non-2xx fetch; these the test asks for. The page logs nothing. */
    const expectedConsoleErrors: ExpectedError[] = [
      { phase: 'wrong password', text: /status of 401\b/, path: '/api/password' },
      { phase: 'disable', text: /status of 403\b/, path: '/api/login' },
      { phase: 'create account', text: /status of 409\b/, path: '/api/admin/users' },
      { phase: 'registration closed', text: /status of 403\b/, path: '/api/register' }
    ]

    const browser: Browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs })
    t.teardown(async () => { await browser.close() })
    const pages = new PageWatch()
    const newContext = async (width: number, height: number, colorScheme: 'light' | 'dark'): Promise<BrowserContext> =>
      await browser.newContext({ viewport: { width, height }, colorScheme, locale: 'en-US', timezoneId: 'Europe/Paris' })
    const adminPage = pages.watch(await (await newContext(360, 740, 'dark')).newPage(), 'admin')
    const carolPage = pages.watch(await (await newContext(1280, 800, 'light')).newPage(), 'carol')
    const carolElsewhere = pages.watch(await (await newContext(1280, 800, 'light')).newPage(), 'carol elsewhere')
    for (const [page, user] of [[adminPage, admin], [carolPage, carol], [carolElsewhere, carol]] as const) {
      await page.goto(`${baseUrl}/#general`)
      await logIn(page, user.username, password)
    }

    await t.test('carol changes her password; her other session ends', async (t) => {
      pages.phase = 'account'
      const accountButton = carolPage.getByRole('button', { name: 'Account', exact: true })
      await accountButton.focus()
      await carolPage.keyboard.press('Enter')
      const dialog = carolPage.getByRole('dialog', { name: 'Account' })
      await dialog.waitFor()
      t.equal(await dialog.locator('#account-name').textContent(), carol.username, 'it says who is signed in')
      t.ok(await carolPage.getByLabel('Current password', { exact: true }).evaluate((input) => input === document.activeElement), 'the focus is on the current password')
      t.equal(await dialog.getByRole('button', { name: 'Users', exact: true }).count(), 0, 'no users page for someone who is not an administrator')

      pages.phase = 'wrong password'
      await carolPage.getByLabel('Current password', { exact: true }).fill('not my password')
      await carolPage.getByLabel('New password', { exact: true }).fill(newPassword)
      await carolPage.keyboard.press('Enter')
      await dialog.getByRole('alert').getByText('That is not your current password. Your password is unchanged.', { exact: true }).waitFor()

      pages.phase = 'short password'
      await carolPage.getByLabel('Current password', { exact: true }).fill(password)
      await carolPage.getByLabel('New password', { exact: true }).fill('short')
      await carolPage.keyboard.press('Enter')
      await dialog.getByRole('alert').getByText(/^A new password is at least \d+ characters\.$/).waitFor()

      pages.phase = 'password change'
      await carolPage.getByLabel('New password', { exact: true }).fill(newPassword)
      await carolPage.keyboard.press('Enter')
      await dialog.getByText('Your password is changed. You are still signed in here; your other sessions have ended.', { exact: true }).waitFor()
      t.equal(await carolPage.getByLabel('Current password', { exact: true }).inputValue(), '', 'the form is emptied')
      await waitForLoginForm(carolElsewhere, endedText)
      t.pass('her other session is back on the login form')
      await carolPage.keyboard.press('Escape')
      await dialog.waitFor({ state: 'hidden' })
      t.ok(await accountButton.evaluate((button) => button === document.activeElement), 'Escape closes it, the focus back on its button')
      await waitForConnection(carolPage, 'Connected')
      t.ok(await carolPage.locator('#chat-view').isVisible(), 'this session goes on')
      await logIn(carolElsewhere, carol.username, newPassword)
      t.pass('the new password logs in')
    })

    const usersDialog = adminPage.getByRole('dialog', { name: 'Users' })
    const userRows = usersDialog.locator('#users-list .user-row')
    const row = (name: string): ReturnType<Page['locator']> => userRows.filter({ has: adminPage.locator('.user-name').getByText(name, { exact: true }) })

    await t.test('an administrator pages through the users', async (t) => {
      pages.phase = 'users'
      await adminPage.getByRole('button', { name: 'Account', exact: true }).click()
      const users = adminPage.getByRole('dialog', { name: 'Account' }).getByRole('button', { name: 'Users', exact: true })
      await users.waitFor()
      await screenshot(adminPage, `${screenshotDir}/account-narrow-dark.png`)
      await users.click()
      await usersDialog.waitFor()
      await adminPage.waitForFunction(() => document.querySelectorAll('#users-list .user-row').length === 100, undefined, { timeout: waitMs })
      const more = usersDialog.getByRole('button', { name: 'More', exact: true })
      t.ok(await more.isVisible(), 'a full page has More after it')
      t.same(await userRows.locator('.user-name').evaluateAll((names) => names.slice(0, 2).map((name) => name.textContent)), [admin.username, carol.username], 'by name')
      t.equal(await row(admin.username).locator('.user-tag').textContent(), 'administrator', 'an administrator is marked')
      await more.click()
      await adminPage.waitForFunction(() => document.querySelectorAll('#users-list .user-row').length === 102, undefined, { timeout: waitMs })
      await more.waitFor({ state: 'hidden' })
      t.pass('More brings the rest, then goes')
      t.equal(await adminPage.evaluate(() => document.activeElement?.getAttribute('aria-label')), `Disable ${fillerPrefix}_098`,
        'the focus goes to the first user More brought')
      await usersDialog.evaluate((dialog) => { dialog.scrollTop = 0 })
      await screenshot(adminPage, `${screenshotDir}/users-narrow-dark.png`)
      await adminPage.emulateMedia({ colorScheme: 'light' })
      await screenshot(adminPage, `${screenshotDir}/users-narrow-light.png`)
      await adminPage.emulateMedia({ colorScheme: 'dark' })
    })

    await t.test('disabled, carol\'s page drops to the login form, which says why', async (t) => {
      pages.phase = 'disable'
      await row(carol.username).getByRole('button', { name: `Disable ${carol.username}`, exact: true }).click()
      const enable = row(carol.username).getByRole('button', { name: `Enable ${carol.username}`, exact: true })
      await enable.waitFor()
      t.ok(await enable.evaluate((button) => button === document.activeElement), 'the focus stays on the row\'s button')
      t.equal(await row(carol.username).locator('.user-tag').textContent(), 'disabled', 'marked disabled')
      await waitForLoginForm(carolPage, endedText)
      await waitForLoginForm(carolElsewhere, endedText)
      t.pass('both of her sessions are on the login form')
      await refusedLogin(carolPage, carol.username, newPassword, 'This account is disabled: an administrator has to enable it before you can log in.')
      t.ok(await carolPage.locator('#auth-register-hint').isHidden(), 'no hint to register')

      pages.phase = 'enable'
      await enable.click()
      await row(carol.username).getByRole('button', { name: `Disable ${carol.username}`, exact: true }).waitFor()
      await logIn(carolPage, carol.username, newPassword)
      t.pass('enabled, she logs in')
    })

    await t.test('an administrator creates an account', async (t) => {
      pages.phase = 'create account'
      const name = adminPage.getByLabel('Account name', { exact: true })
      await name.fill(carol.username)
      await adminPage.getByLabel('Its password', { exact: true }).fill(password)
      await adminPage.getByRole('button', { name: 'Create account', exact: true }).click()
      await usersDialog.locator('#account-form-error').getByText(`There is already an account called ${carol.username}.`, { exact: true }).waitFor()

      await name.fill(erin)
      await adminPage.getByLabel('Its password', { exact: true }).fill(password)
      await adminPage.getByRole('button', { name: 'Create account', exact: true }).click()
      await usersDialog.getByText(`The account ${erin} is made: they can log in with the password you gave.`, { exact: true }).waitFor()
      await row(erin).waitFor()
      t.pass('listed')
      await adminPage.keyboard.press('Escape')
      await usersDialog.waitFor({ state: 'hidden' })

      const erinPage = pages.watch(await (await newContext(360, 740, 'light')).newPage(), 'erin')
      await erinPage.goto(`${baseUrl}/#general`)
      await logIn(erinPage, erin, password)
      t.equal(await erinPage.locator('#user-name').textContent(), erin, 'the new account logs in')
      await erinPage.close()
    })

    await t.test('closed registration says so', async (t) => {
      pages.phase = 'registration closed'
      const closed = await buildApp(testConfig(t, { DATA_DIR: tempDir(t, 'canopy-closed-'), REGISTRATION: 'closed' }))
      t.teardown(async () => { await closed.close() })
      const closedUrl = `http://127.0.0.1:${await listen(closed)}`
      const page = pages.watch(await (await newContext(360, 740, 'light')).newPage(), 'visitor')
      await page.goto(`${closedUrl}/#general`)
      await page.getByLabel('Name', { exact: true }).fill(uniqueName('visitor'))
      await page.getByLabel('Password', { exact: true }).fill(password)
      await page.getByRole('button', { name: 'Register', exact: true }).click()
      await page.locator('#auth-error').getByText('Registration is closed here: an administrator can make an account for you.', { exact: true }).waitFor()
      t.pass('in plain words')
      await page.close()
    })

    await t.test('no errors in the browser console', async (t) => {
      t.same(pages.unexpected(expectedConsoleErrors, baseUrl), [], 'only the network errors Chromium logs for the refusals asked for')
      for (const error of pages.errors) t.comment(`  ${error.page} (${error.phase}): ${error.text} ${error.url}`)
      t.same(pages.dialogs, [], 'no dialogs')
    })
  })
}
