import t from 'tap'
import { performance } from 'node:perf_hooks'
import { chromium } from 'playwright-core'
import { buildApp } from '../../server/app.js'
import { migratedDataDir, register, testConfig, uniqueName } from '../helpers/app.js'
import { chromiumArgs, chromiumPath, listen, logIn, logItems, PageWatch, send, waitForAllSent, waitForConnection } from '../helpers/page.js'

/**
 * The page's resends, in Chromium against a real server with a small publish budget: a
 * publish refused with `rate_limited` goes again, with its ref, only once its `retryAfterMs`
 * is over (a client that does not wait is closed with 1008), and one answered `unavailable`
 * goes again after a pause; each message is stored and shown once.
 */

const topic = 'resend'
/** Two per second, one at once: each message typed in a row is told to wait longer than the one before. */
const publishRate = 2
const typedCount = 6
/** The server's own tolerance for a client's clock: a resend this much early is still in time. */
const resendToleranceMs = 10

interface Refusal { ref: string, retryAfterMs: number, atMs: number }

if (chromiumPath === undefined) {
  t.plan(0, 'skipped: no Chromium found (set CHROMIUM_PATH or install chromium)')
} else {
  t.test('refused publishes are sent again when the server says, and show once', async (t) => {
    const app = await buildApp(testConfig(t, { DATA_DIR: await migratedDataDir(t, 'canopy-resend-'), PUBLISH_RATE: String(publishRate), PUBLISH_BURST: '1' }))
    t.teardown(async () => { await app.close() })
    const port = await listen(app)
    const user = await register(app, uniqueName('typist'), 'correct horse battery')

    const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs })
    t.teardown(async () => { await browser.close() })
    const watch = new PageWatch()
    const page = watch.watch(await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage(), 'typist')

    // Every /chat frame passes through here unchanged, timed on this process's clock, except
    // the first ack of `busyText`, which is answered `unavailable` instead.
    const busyText = 'Through a busy server'
    const refusals: Refusal[] = []
    const publishes: Array<{ ref: string, text: string, atMs: number }> = []
    const closes: number[] = []
    let sockets = 0
    let busyRef: string | undefined
    // The typed messages' first publishes are held here until the page has sent all of them,
    // then reach the server together: six publishes for one token (PUBLISH_BURST 1), however
    // fast or slow this machine lets the page be typed into.
    const held: Array<string | Buffer> = []
    await page.routeWebSocket((url) => url.pathname === '/chat', (ws) => {
      sockets += 1
      const server = ws.connectToServer()
      ws.onMessage((message) => {
        const frame = JSON.parse(String(message)) as { type: string, ref?: string, text?: string }
        if (frame.type === 'publish') publishes.push({ ref: frame.ref ?? '', text: frame.text ?? '', atMs: performance.now() })
        if (frame.type === 'publish' && held.length < typedCount) {
          held.push(message)
          if (held.length === typedCount) for (const publish of held) server.send(publish)
          return
        }
        server.send(message)
      })
      server.onMessage((message) => {
        const frame = JSON.parse(String(message)) as { type: string, code?: string, ref?: string, retryAfterMs?: number }
        if (frame.type === 'error' && frame.code === 'rate_limited' && frame.ref !== undefined) {
          refusals.push({ ref: frame.ref, retryAfterMs: frame.retryAfterMs ?? 0, atMs: performance.now() })
        }
        if (frame.type === 'ack' && busyRef === undefined && publishes.find((sent) => sent.ref === frame.ref)?.text === busyText) {
          busyRef = frame.ref
          ws.send(JSON.stringify({ type: 'error', code: 'unavailable', message: 'could not store it in time; resend', ref: frame.ref }))
          return
        }
        ws.send(message)
      })
      server.onClose((code) => { closes.push(code ?? 0) })
    })

    await page.goto(`http://127.0.0.1:${port}/#${topic}`)
    await logIn(page, user.username, 'correct horse battery')

    const typed = Array.from({ length: typedCount }, (_, i) => `Quick message ${i + 1}`)
    for (const text of typed) await send(page, text)
    await waitForAllSent(page)

    t.ok(new Set(refusals.map((refusal) => refusal.ref)).size >= typedCount - 2,
      `the server told publishes to wait (${refusals.length} times for ${typedCount} messages)`)
    for (const refusal of refusals) {
      const resent = publishes.find((sent) => sent.ref === refusal.ref && sent.atMs > refusal.atMs)
      t.ok(resent !== undefined, `${refusal.ref.slice(0, 8)} was sent again, with its ref`)
      const waitedMs = (resent?.atMs ?? 0) - refusal.atMs
      t.ok(waitedMs >= refusal.retryAfterMs - resendToleranceMs,
        `${refusal.ref.slice(0, 8)} was sent again after ${Math.round(waitedMs)} ms, told to wait ${refusal.retryAfterMs} ms`)
    }

    await send(page, busyText)
    await waitForAllSent(page)
    t.ok(busyRef !== undefined, 'the first answer to a publish was unavailable')
    t.ok(publishes.filter((sent) => sent.ref === busyRef).length >= 2, 'that publish was sent again with the same ref')

    const items = await logItems(page)
    for (const text of [...typed, busyText]) {
      t.equal(items.filter((item) => item.text === text).length, 1, `"${text}" shows once`)
    }
    t.ok(items.every((item) => item.id !== undefined && item.status === ''), 'every message is stored, none marked')
    const stored = await app.inject({ url: `/api/topics/${topic}/messages?limit=100`, headers: { cookie: user.cookie } })
    const storedTexts = stored.json<{ messages: Array<{ text: string }> }>().messages.map((message) => message.text)
    t.same([...storedTexts].sort(), [...typed, busyText].sort(), 'the server stored each message once')

    await waitForConnection(page, 'Connected')
    t.equal(sockets, 1, 'on one socket: never closed for not waiting')
    t.same(closes, [], 'the server closed nothing')
    t.same(watch.errors, [], 'no errors in the browser console')
  })
}
