import t from 'tap'
import { chromium, type Browser, type Page } from 'playwright-core'
import { buildTestApp, register, tempDir, uniqueName } from '../helpers/app.js'
import { chromiumArgs, chromiumPath, listen, logIn, logItems, openTopicList, PageWatch, screenshot, send, waitForAllSent, waitForConnection, waitForText } from '../helpers/page.js'

/**
 * What the page promises beyond working, in Chromium at 1280 and 360 px: long names never
 * break the layout, the log ends above the composer after a reload, a topic can be left,
 * a line marks where the unread messages begin, joins and leaves stay out of the log, only
 * a pending or failed message is marked, both drawers have a backdrop, and a counter shows
 * as a message nears the limit. Geometry is read with getBoundingClientRect.
 */

const password = 'correct horse battery'
/** Not the default: the counter must take the limit from the server (/protocol.js). */
const maxMessageChars = 100
/** The longest topic name there is. */
const longTopic = `l${'o'.repeat(62)}g`
const shotDir = process.env.CANOPY_SCREENSHOTS ?? tempDir(t, 'canopy-page-details-')

interface Box { top: number, bottom: number, left: number, right: number, width: number, height: number }

const wide = { width: 1280, height: 800 }
const narrow = { width: 360, height: 740 }

/** The box of the first element matching `selector`, or undefined when there is none or it is not rendered. */
async function box (page: Page, selector: string): Promise<Box | undefined> {
  return await page.evaluate((selector) => {
    const node = document.querySelector(selector)
    if (node === null) return undefined
    const { top, bottom, left, right, width, height } = node.getBoundingClientRect()
    return width === 0 && height === 0 ? undefined : { top, bottom, left, right, width, height }
  }, selector)
}

/** Two frames later: what a ResizeObserver or a layout does in reply has been done. */
async function settled (page: Page): Promise<void> {
  await page.evaluate(async () => {
    await new Promise((resolve) => { requestAnimationFrame(() => { requestAnimationFrame(resolve) }) })
  })
}

const inside = (inner: Box | undefined, outer: Box | undefined): boolean =>
  inner !== undefined && outer !== undefined && inner.left >= outer.left - 0.5 && inner.right <= outer.right + 0.5

if (chromiumPath === undefined) {
  t.plan(0, 'skipped: no Chromium found (set CHROMIUM_PATH or install chromium)')
} else {
  t.test('the page in detail', async (t) => {
    const app = await buildTestApp(t, {
      MAX_MESSAGE_CHARS: String(maxMessageChars),
      PUBLISH_BURST: '500',
      // Presence without grace: a reload is a leave and a join for the others.
      PRESENCE_GRACE: '0'
    })
    const baseUrl = `http://127.0.0.1:${await listen(app)}`
    const bob = await register(app, uniqueName('bob'), password)
    let posted = 0
    const post = async (topic: string, text: string): Promise<number> => {
      const response = await app.inject({ method: 'POST', url: `/api/topics/${topic}/messages`, headers: { cookie: bob.cookie }, payload: { text, ref: `post-${++posted}` } })
      if (response.statusCode !== 201) throw new Error(`publishing: ${response.statusCode} ${response.body}`)
      return response.json<{ message: { id: number } }>().message.id
    }
    // Listed by the server, never opened by the readers: the "More topics" list has it.
    await post('elsewhere', 'Somewhere else')

    const browser: Browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs })
    t.teardown(async () => { await browser.close() })
    const watch = new PageWatch()
    const openPage = async (label: string, viewport: { width: number, height: number }): Promise<Page> =>
      watch.watch(await (await browser.newContext({ viewport, locale: 'en-US' })).newPage(), label)
    /** A new reader, logged in on `topic`. */
    const reader = async (label: string, viewport: { width: number, height: number }, topic = 'general'): Promise<{ page: Page, name: string }> => {
      const user = await register(app, uniqueName(label), password)
      const page = await openPage(label, viewport)
      await page.goto(`${baseUrl}/#${topic}`)
      await logIn(page, user.username, password)
      return { page, name: user.username }
    }

    for (const viewport of [wide, narrow]) {
      await t.test(`a 64-character topic name keeps the topic panel in place at ${viewport.width} px`, async (t) => {
        const { page } = await reader(`long${viewport.width}`, viewport)
        await openTopicList(page)
        const topicInput = page.getByLabel('Topic', { exact: true })
        await topicInput.fill(longTopic)
        await topicInput.press('Enter')
        await page.getByRole('heading', { name: `#${longTopic}`, exact: true }).waitFor()
        await page.locator('#more-topics a[data-topic="elsewhere"]').waitFor({ state: 'attached' })

        const check = async (when: string): Promise<void> => {
          await openTopicList(page)
          await settled(page)
          const panel = await page.locator('#topics-panel').evaluate((node) => ({ scrollLeft: node.scrollLeft, scrollWidth: node.scrollWidth, clientWidth: node.clientWidth }))
          t.equal(panel.scrollLeft, 0, `${when}: the panel is not scrolled sideways`)
          t.ok(panel.scrollWidth <= panel.clientWidth, `${when}: nothing in the panel is wider than it (${panel.scrollWidth} ≤ ${panel.clientWidth})`)
          const panelBox = await box(page, '#topics-panel')
          const parts = { 'the topic box': '#topic-input', Join: '#topic-form button', 'your topics': '#joined-topics', 'more topics': '#more-topics', 'the long name': `#joined-topics a[data-topic="${longTopic}"]` }
          for (const [what, selector] of Object.entries(parts)) {
            t.ok(inside(await box(page, selector), panelBox), `${when}: ${what} is within the panel`)
          }
          const name = page.locator(`#joined-topics a[data-topic="${longTopic}"] .topic-name`)
          t.equal(await name.getAttribute('title'), `#${longTopic}`, `${when}: the whole name shows on hover`)
          t.ok(await name.evaluate((node) => node.scrollWidth > node.clientWidth), `${when}: the name is cut`)
        }
        await check('on the long topic')
        await screenshot(page, `${shotDir}/long-topic-${viewport.width}.png`)

        await topicInput.fill('Not a topic!')
        await topicInput.press('Enter')
        await page.getByRole('alert').getByText(/^A topic is up to 64 characters/).waitFor()
        t.ok(inside(await box(page, '#topic-error'), await box(page, '#topics-panel')), 'the bad-topic alert is within the panel')

        await page.locator('#joined-topics a[data-topic="general"]').click()
        await page.getByRole('heading', { name: '#general', exact: true }).waitFor()
        await check('back on #general')
        const title = await box(page, '#topic-title')
        const header = await box(page, '.topic-header')
        t.ok(inside(title, header), 'the long name never widened the topic header')
        await page.context().close()
      })
    }

    for (const viewport of [wide, narrow]) {
      await t.test(`after a reload the last message sits above the composer at ${viewport.width} px`, async (t) => {
        // A whole topic, shorter than a subscription's history: "This is the start of …" shows above it once it is in.
        const topic = `reload${viewport.width}`
        for (let i = 1; i <= 12; i++) await post(topic, `Line ${i}`)
        const { page } = await reader(`reload${viewport.width}`, viewport, topic)
        await waitForText(page, 'Line 12')
        await page.getByText(`This is the start of #${topic}.`).waitFor()
        await settled(page)
        // The window made so that the log overflows by less than that line: before the line shows, nothing overflows.
        const { clientHeight, contentHeight, lineHeight } = await page.locator('#log-scroller').evaluate((node) => {
          const style = getComputedStyle(node)
          const edge = node.querySelector('.history-edge')?.getBoundingClientRect().top ?? 0
          const end = node.querySelector('#messages')?.getBoundingClientRect().bottom ?? 0
          return {
            clientHeight: node.clientHeight,
            contentHeight: end - edge + parseFloat(style.paddingTop) + parseFloat(style.paddingBottom),
            lineHeight: node.querySelector('#history-start')?.getBoundingClientRect().height ?? 0
          }
        })
        const overflowPx = Math.floor(lineHeight / 2)
        t.ok(overflowPx >= 4, `the line above the messages is ${lineHeight} px high`)
        await page.setViewportSize({ width: viewport.width, height: Math.round(viewport.height - clientHeight + contentHeight - overflowPx) })
        await page.reload()
        await waitForConnection(page, 'Connected')
        await waitForText(page, 'Line 12')
        await page.getByText(`This is the start of #${topic}.`).waitFor()
        await settled(page)
        const last = await box(page, '#messages li:last-child')
        const composer = await box(page, '#composer')
        const scroller = await box(page, '#log-scroller')
        t.ok(last !== undefined && composer !== undefined && scroller !== undefined && last.bottom <= composer.top && last.bottom <= scroller.bottom,
          `the last message (bottom ${last?.bottom}) is fully above the composer (top ${composer?.top})`)
        const scroll = await page.locator('#log-scroller').evaluate((node) => ({ overflow: node.scrollHeight - node.clientHeight, top: node.scrollTop }))
        t.ok(scroll.overflow > 0, 'the log does overflow')
        t.ok(scroll.top >= scroll.overflow - 1, `the log is scrolled to its end (${scroll.top} of ${scroll.overflow})`)
        await screenshot(page, `${shotDir}/reload-${viewport.width}.png`)
        await page.context().close()
      })
    }

    await t.test('joins and leaves update who is here, not the log; stored messages carry no mark', async (t) => {
      const alice = await reader('alice', wide, 'meet')
      await send(alice.page, 'Anyone here?')
      await waitForAllSent(alice.page)
      const own = alice.page.locator('#messages .message.own')
      t.equal(await own.locator('.status').count(), 0, 'a stored message of one\'s own is not marked')
      t.notOk(await own.textContent().then((text) => text?.includes('Sent')), 'no "Sent" on it')

      const carol = await reader('carol', narrow, 'meet')
      await alice.page.locator('#members .member-name', { hasText: carol.name }).waitFor()
      await carol.page.reload()
      await waitForConnection(carol.page, 'Connected')
      await carol.page.context().close()
      await alice.page.locator('#members .member-name', { hasText: carol.name }).waitFor({ state: 'detached' })
      t.equal(await alice.page.locator('#messages .notice').count(), 0, 'no line in the log for joining, reloading or leaving')
      t.same((await logItems(alice.page)).map((item) => item.text), ['Anyone here?'], 'the log holds the messages only')
      await alice.page.context().close()
    })

    await t.test('a topic can be left from "Your topics"', async (t) => {
      const { page } = await reader('leaver', wide)
      let unsubscribed = (): void => {}
      const unsubscribe = new Promise<void>((resolve) => { unsubscribed = resolve })
      page.on('websocket', (socket) => {
        socket.on('framesent', (frame) => {
          if (typeof frame.payload !== 'string') return
          const sent = JSON.parse(frame.payload) as { type: string, topic: string }
          if (sent.type === 'unsubscribe' && sent.topic === 'plants') unsubscribed()
        })
      })
      // A socket the test sees from its start.
      await page.reload()
      await waitForConnection(page, 'Connected')
      await post('plants', 'Ferns')
      await page.goto(`${baseUrl}/#plants`)
      await waitForText(page, 'Ferns')
      await page.locator('#joined-topics a[data-topic="plants"]').waitFor()
      await page.goto(`${baseUrl}/#general`)
      await page.getByRole('heading', { name: '#general', exact: true }).waitFor()
      t.equal(await page.getByRole('button', { name: 'Leave #general', exact: true }).count(), 0, 'the default topic cannot be left')

      const leave = page.getByRole('button', { name: 'Leave #plants', exact: true })
      await leave.focus()
      await page.keyboard.press('Enter')
      await page.locator('#joined-topics a[data-topic="plants"]').waitFor({ state: 'detached' })
      await page.locator('#more-topics a[data-topic="plants"]').waitFor()
      await page.waitForFunction(() => document.activeElement?.matches('#joined-topics a, #topic-input') === true)
      t.pass('left: listed with the other topics, the focus on the next topic')
      await unsubscribe
      t.pass('the socket unsubscribed from it')

      // The server keeps the read position; the page does not join the topic by it again.
      await page.reload()
      await waitForConnection(page, 'Connected')
      await page.locator('#more-topics a[data-topic="plants"]').waitFor()
      t.equal(await page.locator('#joined-topics a[data-topic="plants"]').count(), 0, 'after a reload it is still left')
      await post('plants', 'Cacti')
      await post('general', 'Counted, as general is joined')
      await page.getByText('Counted, as general is joined').waitFor()
      t.equal(await page.title(), '#general · Canopy', 'a message in a left topic counts as nothing unread')

      // Opening it joins it again; leaving the open topic goes to #general.
      await page.locator('#more-topics a[data-topic="plants"]').click()
      await waitForText(page, 'Cacti')
      await page.locator('#joined-topics a[data-topic="plants"]').waitFor()
      await page.getByRole('button', { name: 'Leave #plants', exact: true }).click()
      await page.getByRole('heading', { name: '#general', exact: true }).waitFor()
      t.equal(new URL(page.url()).hash, '#general', 'leaving the open topic opens #general')
      await page.locator('#more-topics a[data-topic="plants"]').waitFor()
      await screenshot(page, `${shotDir}/left-1280.png`)
      await page.context().close()
    })

    await t.test('a line marks where the unread messages begin', async (t) => {
      const { page } = await reader('reader', narrow)
      const first = await post('news', 'Read already')
      const readUpTo = async (id: number): Promise<unknown> => await page.waitForResponse((response) => response.request().method() === 'PUT' &&
        new URL(response.url()).pathname === '/api/topics/news/read' && response.request().postDataJSON().id === id)
      const firstRead = readUpTo(first)
      await page.goto(`${baseUrl}/#news`)
      await waitForText(page, 'Read already')
      await firstRead
      t.equal(await page.locator('.unread-line').count(), 0, 'no line in a topic with nothing unread')

      // Away in #general; two messages come.
      await page.goto(`${baseUrl}/#general`)
      await page.getByRole('heading', { name: '#general', exact: true }).waitFor()
      const second = await post('news', 'New one')
      await post('news', 'Newer one')
      await page.locator('#topics-toggle .badge').getByText('2', { exact: true }).waitFor()
      await openTopicList(page)
      const secondRead = readUpTo(second + 1)
      await page.locator('#joined-topics a[data-topic="news"]').click()
      await waitForText(page, 'Newer one')
      const line = page.locator('#messages .unread-line')
      await line.waitFor()
      const around = async (): Promise<{ before: string | undefined, after: string | undefined }> => await line.evaluate((node) => ({
        before: node.previousElementSibling?.querySelector('.text')?.textContent ?? undefined,
        after: node.nextElementSibling?.querySelector('.text')?.textContent ?? undefined
      }))
      t.same(await around(), { before: 'Read already', after: 'New one' }, 'between the last message read and the first unread one')
      const lineBox = await box(page, '#messages .unread-line')
      const readBox = await box(page, '#messages .message:first-child')
      t.ok(lineBox !== undefined && readBox !== undefined && lineBox.top >= readBox.bottom - 0.5, 'drawn below the message read')
      await screenshot(page, `${shotDir}/unread-line-360.png`)
      await secondRead

      // A message while reading is not unread: the line stays where it is, one of it.
      await post('news', 'While reading')
      await waitForText(page, 'While reading')
      t.equal(await line.count(), 1, 'one line')
      t.same(await around(), { before: 'Read already', after: 'New one' }, 'where it was')

      // After a reload: the line is drawn from the server's read position, before the page moves it.
      await page.goto(`${baseUrl}/#general`)
      await page.getByRole('heading', { name: '#general', exact: true }).waitFor()
      await post('news', 'After the reload')
      await page.locator('#topics-toggle .badge').getByText('1', { exact: true }).waitFor()
      // Reloaded on #news, without opening it first.
      await page.evaluate(() => { history.replaceState(null, '', '#news') })
      await page.reload()
      await waitForConnection(page, 'Connected')
      await waitForText(page, 'After the reload')
      await line.waitFor()
      t.same(await around(), { before: 'While reading', after: 'After the reload' }, 'after a reload, before the first message not read')
      await page.context().close()
    })

    await t.test('the topics drawer and the members drawer both have a backdrop at 360 px', async (t) => {
      const { page } = await reader('drawers', narrow)
      const drawers = [
        { toggle: '#topics-toggle', panel: '#topics-panel', close: 'Close the topic list' },
        { toggle: '#members-toggle', panel: '#members-panel', close: 'Close the member list' }
      ]
      for (const { toggle, panel, close } of drawers) {
        await page.locator(toggle).click()
        await page.locator(panel).waitFor()
        await page.getByRole('button', { name: close, exact: true }).waitFor()
        await settled(page)
        const drawer = await box(page, panel)
        const scrim = await box(page, '#scrim')
        t.ok(scrim !== undefined && drawer !== undefined, `${panel}: a backdrop shows`)
        if (scrim === undefined || drawer === undefined) continue
        // The dimmed strip beside the drawer: wide enough to see, and to tap to close.
        const strip = panel === '#topics-panel' ? { left: drawer.right, right: scrim.right } : { left: scrim.left, right: drawer.left }
        t.ok(strip.right - strip.left >= 48, `${panel}: the backdrop beside it is ${strip.right - strip.left} px wide, at least 48`)
        const x = (strip.left + strip.right) / 2
        const y = (scrim.top + scrim.bottom) / 2
        t.equal(await page.evaluate(([x, y]) => document.elementFromPoint(x, y)?.id, [x, y] as const), 'scrim', `${panel}: the backdrop is on top there`)
        await screenshot(page, `${shotDir}/drawer-${panel.slice(1)}-360.png`)
        await page.mouse.click(x, y)
        await page.locator(panel).waitFor({ state: 'hidden' })
        t.ok(await page.locator('#scrim').isHidden(), `${panel}: a tap on the backdrop closes it`)
      }
      await page.context().close()
    })

    await t.test('a counter shows as a message nears the limit, in code points', async (t) => {
      const { page } = await reader('counter', narrow)
      const input = page.getByLabel('Message', { exact: true })
      const counter = page.locator('#composer-count')
      await input.fill('a'.repeat(maxMessageChars - 20))
      t.ok(await counter.isHidden(), 'no counter far from the limit')
      await input.fill('😀'.repeat(maxMessageChars - 5))
      await counter.getByText('5 characters left', { exact: true }).waitFor()
      t.pass('an emoji counts once, as the server counts it')
      await input.fill('😀'.repeat(maxMessageChars - 1))
      await counter.getByText('1 character left', { exact: true }).waitFor()
      await input.fill('b'.repeat(maxMessageChars + 3))
      await counter.getByText('3 characters too many', { exact: true }).waitFor()
      t.match(await counter.getAttribute('class'), /\bover\b/, 'past the limit it stands out')
      t.match(await input.getAttribute('aria-describedby'), /\bcomposer-count\b/, 'the box is described by it')
      await screenshot(page, `${shotDir}/counter-360.png`)
      await input.fill('c'.repeat(maxMessageChars))
      await counter.getByText('0 characters left', { exact: true }).waitFor()
      await input.press('Enter')
      await waitForText(page, 'c'.repeat(maxMessageChars))
      await counter.waitFor({ state: 'hidden' })
      t.pass('sent at the limit; the counter goes with the text')
      await page.context().close()
    })

    await t.test('no errors in the browser console', async (t) => {
      t.same(watch.errors, [])
      t.same(watch.dialogs, [])
    })
  })
}
