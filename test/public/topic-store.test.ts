import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser } from 'playwright-core'
import { projectRoot } from '../../src/paths.js'
import { buildTestApp } from '../helpers/app.js'
import { chromiumArgs, chromiumPath, listen, PageWatch } from '../helpers/page.js'

/**
 * The page's store (public/topic-store.js) on its own, in Chromium: it owns the open topic,
 * the joined topics and their counts, and tells its listeners what changed, with no socket,
 * no DOM and no URL behind it, so that the views and the connection can each be rebuilt
 * without it changing.
 */

const storeSource = readFileSync(fileURLToPath(new URL('public/topic-store.js', projectRoot)), 'utf8')

t.test('the store imports only the protocol and storage', async (t) => {
  const imports = [...storeSource.matchAll(/^import .* from '([^']+)'$/gm)].map((match) => match[1])
  t.same(imports, ['/protocol.js', './storage.js'], 'nothing of the socket, the views or the URL')
})

/** A call of a store method: its name, then its arguments. */
type Step = [string, ...unknown[]]

interface Run { events: string[], joined: string[], open: string, openings: number, unread: Record<string, number>, listed: string[] }

t.test('the store, driven alone', { skip: chromiumPath === undefined ? 'no Chromium found (set CHROMIUM_PATH or install chromium)' : false }, async (t) => {
  const app = await buildTestApp(t)
  const baseUrl = `http://127.0.0.1:${await listen(app)}`
  const browser: Browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs })
  t.teardown(async () => { await browser.close() })
  const watch = new PageWatch()
  const page = watch.watch(await (await browser.newContext()).newPage(), 'store')
  // A document of the page's origin that runs none of the page: /protocol.js as text.
  await page.goto(`${baseUrl}/protocol.js`)

  const run = async (steps: Step[]): Promise<Run> => await page.evaluate(async (steps) => {
    const { TopicStore } = await import('/topic-store.js' as string) as { TopicStore: new (options: { visible: boolean }) => any }
    localStorage.clear()
    const store = new TopicStore({ visible: true })
    const events: string[] = []
    for (const event of ['open', 'leave', 'unread-line', 'read', 'reset']) {
      store.on(event, (...args: unknown[]) => { events.push([event, ...args].join(' ')) })
    }
    for (const [method, ...args] of steps) store[method](...args)
    const unread: Record<string, number> = {}
    for (const name of [...store.joined, ...store.listed]) unread[name] = store.unread(name)
    return { events, joined: store.joinedNames(), open: store.open, openings: store.openings, unread, listed: store.listed }
  }, steps)

  await t.test('opening a topic joins it; the server is told what was read only once it has listed the topics', async (t) => {
    const result = await run([
      ['openTopic', 'news'],
      ['received', 'news', [{ id: 1 }, { id: 2 }]],
      ['listing', [{ name: 'news', lastId: 2, unread: 2 }, { name: 'general', lastId: 5, unread: 5 }]],
      ['received', 'news', [{ id: 3 }]]
    ])
    t.same(result.events, ['open news', 'read news', 'read news'], 'one open; reads once the read positions are known')
    t.equal(result.open, 'news')
    t.equal(result.openings, 1)
    t.same(result.joined, ['general', 'news'])
    t.same(result.unread, { general: 5, news: 0 }, 'the open topic has nothing unread; the other keeps the server\'s count')
  })

  await t.test('messages of a topic not open are counted from where counting starts', async (t) => {
    const result = await run([
      ['openTopic', 'general'],
      ['received', 'elsewhere', [{ id: 7 }]],
      ['received', 'elsewhere', [{ id: 8 }, { id: 9 }]],
      ['received', 'elsewhere', [{ id: 9 }]]
    ])
    t.same(result.unread.elsewhere, undefined, 'not joined, so not in the total')
    const joined = await run([
      ['openTopic', 'elsewhere'],
      ['openTopic', 'general'],
      ['received', 'elsewhere', [{ id: 7 }]],
      ['received', 'elsewhere', [{ id: 8 }, { id: 9 }]],
      ['received', 'elsewhere', [{ id: 9 }]]
    ])
    t.same(joined.unread, { general: 0, elsewhere: 2 }, 'the first message known is where counting starts; each counts once')
    t.equal(joined.openings, 2)
  })

  await t.test('the line where unread messages begin waits for the server\'s read position', async (t) => {
    const result = await run([
      ['openTopic', 'news'],
      ['listing', [{ name: 'news', lastId: 10, unread: 3 }]]
    ])
    t.same(result.events, ['open news', 'unread-line news 7', 'read news'])
  })

  await t.test('leaving the open topic opens the default one; the default one cannot be left', async (t) => {
    const result = await run([
      ['openTopic', 'plants'],
      ['received', 'plants', [{ id: 4 }]],
      ['leave', 'general'],
      ['leave', 'plants']
    ])
    t.same(result.events, ['open plants', 'leave plants', 'open general'])
    t.equal(result.open, 'general')
    t.same(result.joined, ['general'])
    t.same(result.listed, ['plants'], 'listed with the other topics, to be opened again')
  })

  await t.test('a reset forgets everything and opens nothing', async (t) => {
    const result = await run([
      ['openTopic', 'plants'],
      ['reset']
    ])
    t.same(result.events, ['open plants', 'reset'])
    t.equal(result.open, '')
    t.same(result.joined, ['general'])
  })

  // A document that is not the page asks for /favicon.ico, which the server does not have.
  const favicon = { phase: 'start', text: /status of 404\b/, path: '/favicon.ico' }
  t.same(watch.unexpected([favicon], baseUrl), [], 'no errors in the browser console')
})
