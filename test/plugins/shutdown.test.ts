import { connect as connectRaw, type Socket } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { connectTcp, type ChatClient } from '../helpers/chat.js'
import { startPostgres } from '../helpers/postgres.js'
import { registerOver, ServerProcess } from '../helpers/server-process.js'
import { CloseCode } from '../../src/protocol.js'

/** How often the load below opens a new socket and calls the API: a load balancer's pace. */
const everyMs = 50
/** Publishes a client keeps unacknowledged, as the client library does (at most 32). */
const publishesInFlight = 8
/** Acks after which a client drops its connection and reconnects, resending what is unacked. */
const acksPerConnection = 15

/** The log says the shutdown finished by itself, not that close-with-grace forced it. */
function finishedCleanly (t: Test, server: ServerProcess): void {
  const last = server.lines.at(-1)
  t.equal(last?.msg, 'shutdown complete', 'the last line says the shutdown completed')
  t.comment(`shutdown took ${String(last?.durationMs)} ms`)
  t.same(server.lines.filter((line) => line.level >= 50).map((line) => line.raw), [], 'no error line (a forced exit logs one)')
  t.same(server.notJson, [], 'every line of stdout is JSON')
  t.equal(server.stderr, '', 'nothing on stderr')
}

t.test('SIGTERM while clients keep connecting, reconnecting and publishing: exit 0, every ack stored, JSON log', async (t) => {
  const postgres = await startPostgres(t)
  const server = new ServerProcess(t, { DATABASE_URL: postgres.url, SESSION_SECRET: 's'.repeat(40), PUBLISH_RATE: '1000', PUBLISH_BURST: '1000' })
  const baseUrl = await server.listening()
  const topic = 'busy'
  const users = await Promise.all([1, 2, 3, 4, 5].map(async (n) => await registerOver(baseUrl, `busy${n}`)))

  /** The load goes on until the process is gone, as a load balancer's does until it notices. */
  const serverGone = { yes: false }
  void server.exited.then(() => { serverGone.yes = true })
  /** Every ack the clients got, WebSocket and HTTP: ref → id. */
  const acked = new Map<string, number>()
  let ackedBeforeSignal: () => void = () => {}
  const enoughAcked = new Promise<void>((resolve) => { ackedBeforeSignal = resolve })
  const ack = (ref: string, id: number): void => {
    acked.set(ref, id)
    if (acked.size >= 100) ackedBeforeSignal()
  }
  let reconnects = 0
  const upgrades: string[] = []
  const apiCalls: string[] = []
  const closeCodes: number[] = []

  /** A client that publishes and reconnects, resending its unacknowledged publishes, as the page does. */
  const publisher = async (index: number): Promise<void> => {
    const { cookie, wsTicket } = users[index] ?? {}
    if (cookie === undefined || wsTicket === undefined) throw new Error('no user')
    const unacked = new Set<string>()
    let next = 0
    while (!serverGone.yes) {
      let client: ChatClient
      try {
        client = await connectTcp(baseUrl, cookie, wsTicket, { topic })
      } catch {
        await delay(everyMs)
        continue
      }
      const send = (ref: string): void => { unacked.add(ref); client.send({ type: 'publish', topic, text: ref, ref }) }
      for (const ref of unacked) send(ref)
      while (unacked.size < publishesInFlight) send(`c${index}-${next++}`)
      let ackedHere = 0
      try {
        while (ackedHere < acksPerConnection) {
          const frame = await client.next()
          if (frame.type === 'ack') {
            ack(frame.ref, frame.id)
            unacked.delete(frame.ref)
            ackedHere++
            send(`c${index}-${next++}`)
          }
        }
        reconnects++
        client.close()
      } catch {
        // Closed by the server: reconnect.
      }
      closeCodes.push((await client.closed).code)
    }
  }

  /** A new socket every 50 ms, closed once open: upgrades keep arriving through the shutdown. */
  const upgrader = async (): Promise<void> => {
    const { cookie, wsTicket } = users[0] ?? {}
    if (cookie === undefined || wsTicket === undefined) throw new Error('no user')
    const attempts: Array<Promise<void>> = []
    while (!serverGone.yes) {
      attempts.push(connectTcp(baseUrl, cookie, wsTicket, { topic }).then(async (client) => {
        upgrades.push('opened')
        client.close()
        await client.closed
      }, (error: Error & { code?: string }) => { upgrades.push(error.code ?? error.message) }))
      await delay(everyMs)
    }
    await Promise.all(attempts)
  }

  /** An API call every 50 ms, a read and a publish in turn. */
  const caller = async (): Promise<void> => {
    const { cookie } = users[1] ?? {}
    if (cookie === undefined) throw new Error('no user')
    const calls: Array<Promise<void>> = []
    for (let n = 0; !serverGone.yes; n++) {
      const ref = `h-${n}`
      const request = n % 2 === 0
        ? fetch(`${baseUrl}/api/topics`, { headers: { cookie } })
        : fetch(`${baseUrl}/api/topics/${topic}/messages`, { method: 'POST', headers: { cookie, 'content-type': 'application/json', origin: baseUrl }, body: JSON.stringify({ text: ref, ref }) })
      calls.push(request.then(async (response) => {
        apiCalls.push(String(response.status))
        const body = await response.json() as { message?: { id: number } }
        if (response.status === 201 && body.message !== undefined) ack(ref, body.message.id)
      }, (error: Error & { cause?: { code?: string } }) => { apiCalls.push(error.cause?.code ?? error.message) }))
      await delay(everyMs)
    }
    await Promise.all(calls)
  }

  // A subscriber that stays connected through it all: the signal finds it open.
  const watcher = await connectTcp(baseUrl, users[4]?.cookie ?? '', users[4]?.wsTicket ?? '', { topic })
  await watcher.nextOf('subscribed')
  const load = Promise.all([...users.map(async (_, index) => { await publisher(index) }), upgrader(), caller()])
  await enoughAcked
  server.child.kill('SIGTERM')
  const { code, signal } = await server.exited
  await load

  t.equal(code, 0, 'exit 0')
  t.equal(signal, null)
  finishedCleanly(t, server)
  t.comment(`${acked.size} acks, ${reconnects} reconnects; upgrades: ${count(upgrades)}; API calls: ${count(apiCalls)}; close codes: ${count(closeCodes.map(String))}`)
  t.equal((await watcher.closed).code, CloseCode.shuttingDown, 'a socket open at the signal is closed with 1001')

  const stored = new Map((await postgres.admin('SELECT ref, id FROM messages WHERE topic = $1', [topic])).rows.map((row: { ref: string, id: string }) => [row.ref, Number(row.id)]))
  const missing = [...acked].filter(([ref, id]) => stored.get(ref) !== id)
  t.same(missing, [], `every one of the ${acked.size} acked publishes is stored, with the id of its ack`)
})

t.test('an upgrade that arrives while the server closes is refused with 503 and its socket closed', async (t) => {
  const postgres = await startPostgres(t)
  const server = new ServerProcess(t, { DATABASE_URL: postgres.url, SESSION_SECRET: 's'.repeat(40) })
  const baseUrl = await server.listening()
  const { cookie, wsTicket } = await registerOver(baseUrl, 'upgrader')
  const held = await connectTcp(baseUrl, cookie, wsTicket)
  await held.nextOf('subscribed')

  // An upgrade request on a connection of its own, its last line held back: the connection
  // is busy (not idle), so the shutdown neither refuses nor cuts it before it is whole.
  const { port } = new URL(baseUrl)
  const socket = connectRaw(Number(port), '127.0.0.1')
  await new Promise<void>((resolve) => { socket.once('connect', resolve) })
  const path = `/chat?ticket=${encodeURIComponent(wsTicket)}`
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: ${cookie}\r\n`)
  const answer = readToEnd(socket)

  server.child.kill('SIGTERM')
  // The held socket's 1001 says the shutdown is under way: now the upgrade is whole.
  t.equal((await held.closed).code, CloseCode.shuttingDown)
  socket.write('\r\n')
  const response = await answer
  t.match(response, /^HTTP\/1\.1 503 /, 'refused with 503')
  t.match(response, /\r\n\r\n\{"error":"unavailable","message":"[^"]+"\}$/, 'with a JSON error')
  const { code } = await server.exited
  t.equal(code, 0, 'exit 0: the refused socket held nothing open')
  finishedCleanly(t, server)
})

/** Everything the peer sends until it closes the connection. */
async function readToEnd (socket: Socket): Promise<string> {
  let text = ''
  socket.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
  await new Promise<void>((resolve) => { socket.once('close', () => { resolve() }) })
  return text
}

function count (values: string[]): string {
  const counts = new Map<string, number>()
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1)
  return [...counts].map(([value, n]) => `${value} ×${n}`).join(', ')
}
