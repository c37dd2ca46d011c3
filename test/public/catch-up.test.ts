import t from 'tap'
import { chromium } from 'playwright-core'
import { buildApp } from '../../server/app.js'
import type { Config } from '../../src/config.js'
import { CloseCode, maxSinceMessages } from '../../src/protocol.js'
import { migratedDataDir, register, testConfig, uniqueName } from '../helpers/app.js'
import { chromiumArgs, chromiumPath, listen, logItems, PageWatch, waitForConnection } from '../helpers/page.js'

/**
 * The page's catch-up after a restart, when it missed more than one `since` reply holds and
 * its socket drops right after the first reply: it must resume from where that reply
 * stopped, not from the newest message it saw, so that nothing is skipped or shown twice.
 */

const topic = 'catch-up'
const seedCount = 5
/** More than one reply holds, and more than the history a new socket shows on top of it. */
const missedCount = maxSinceMessages + maxSinceMessages / 2
const total = seedCount + missedCount

interface SubscribeSent { socket: number, topic: string, since: number | undefined }

if (chromiumPath === undefined) {
  t.plan(0, 'skipped: no Chromium found (set CHROMIUM_PATH or install chromium)')
} else {
  t.test('a catch-up cut off by a drop resumes where it stopped', async (t) => {
    const config: Config = testConfig(t, {
      DATA_DIR: await migratedDataDir(t, 'canopy-catch-up-'),
      PUBLISH_RATE: '100000',
      PUBLISH_BURST: '100000'
    })
    let app = await buildApp(config)
    t.teardown(async () => { await app.close() })
    const port = await listen(app)
    const bot = await register(app, uniqueName('bot'))
    const publish = async (count: number, prefix: string): Promise<void> => {
      // A hundred at a time: each waits for its commit, and the commits share batches.
      for (let start = 1; start <= count; start += 100) {
        await Promise.all(Array.from({ length: Math.min(100, count - start + 1) }, async (_, i) => {
          const text = `${prefix} ${start + i}`
          const response = await app.inject({ method: 'POST', url: `/api/topics/${topic}/messages`, headers: { cookie: bot.cookie }, payload: { text, ref: text } })
          if (response.statusCode !== 201) throw new Error(`publishing: ${response.statusCode} ${response.body}`)
        }))
      }
    }
    await publish(seedCount, 'Before')

    const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs })
    t.teardown(async () => { await browser.close() })
    const watch = new PageWatch()
    const page = watch.watch(await (await browser.newContext()).newPage(), 'reader')

    // Every /chat socket of the page goes through here, to the server and back, unchanged,
    // until `dropAfterTruncated` is set: then the socket is closed from the server's side right
    // after the first reply with `truncated` reaches the page, before anything else does.
    let sockets = 0
    let dropAfterTruncated = false
    const drops: Array<{ socket: number, lastId: number }> = []
    const subscribes: SubscribeSent[] = []
    await page.routeWebSocket((url) => url.pathname === '/chat', (ws) => {
      const socket = ++sockets
      const server = ws.connectToServer()
      let cut = false
      ws.onMessage((message) => {
        const frame = JSON.parse(String(message)) as { type: string, topic: string, since?: number }
        if (frame.type === 'subscribe') subscribes.push({ socket, topic: frame.topic, since: frame.since })
        if (!cut) server.send(message)
      })
      server.onMessage((message) => {
        if (cut) return
        ws.send(message)
        const frame = JSON.parse(String(message)) as { type: string, truncated?: boolean, history?: Array<{ id: number }> }
        if (!dropAfterTruncated || frame.type !== 'subscribed' || frame.truncated !== true) return
        cut = true
        dropAfterTruncated = false
        drops.push({ socket, lastId: frame.history?.at(-1)?.id ?? 0 })
        void ws.close({ code: CloseCode.tryAgainLater, reason: 'dropped by the test mid catch-up' })
        void server.close()
      })
    })

    await page.goto(`http://127.0.0.1:${port}/#${topic}`)
    await page.getByLabel('Name', { exact: true }).fill(uniqueName('reader'))
    await page.getByLabel('Password', { exact: true }).fill('correct horse battery')
    await page.getByRole('button', { name: 'Register', exact: true }).click()
    await waitForConnection(page, 'Connected')
    await page.getByRole('log').getByText(`Before ${seedCount}`, { exact: true }).waitFor()

    // Down, and the topic moves on meanwhile: the page will have to catch up with `since`.
    await app.close()
    await waitForConnection(page, 'Reconnecting…')
    app = await buildApp(config)
    await app.ready()
    await publish(missedCount, 'Missed')
    dropAfterTruncated = true
    await listen(app, port)
    // The browser says it is back online: the page retries at once instead of after its backoff.
    await page.evaluate(() => { window.dispatchEvent(new Event('online')) })

    // Filling up is the end of a right catch-up; a wrong one never gets there, and the checks
    // below say what it missed.
    const filled = await page.waitForFunction((total) => document.querySelectorAll('#messages .message').length >= total,
      total, { timeout: 60_000 }).then(() => true, () => false)
    t.ok(filled, `the log reached ${total} messages`)

    t.equal(drops.length, 1, 'the socket was dropped once, right after a truncated reply')
    const [drop] = drops
    // The page's other topics (general) are subscribed on the same socket, for their unread counts.
    const resumed = subscribes.find((sent) => drop !== undefined && sent.socket > drop.socket && sent.topic === topic && sent.since !== undefined)
    t.equal(resumed?.since, drop?.lastId, 'the next socket asked for what came after that reply')

    const ids = (await logItems(page)).map((item) => item.id)
    t.equal(ids.length, total, `${total} messages, each once`)
    t.same(ids, Array.from({ length: total }, (_, i) => i + 1), 'every id of the topic, in order, none skipped')
    // The server's restart makes Chromium log the failed probes of /api/me; the page adds nothing.
    t.same(watch.errors.filter((error) => error.uncaught), [], 'no uncaught error in the page')
  })
}
