import { createServer } from 'node:http'
import { WebSocketServer, type RawData, type WebSocket } from 'ws'

/**
 * The limit: a raw `ws` broadcast server with no persistence and no auth. Each text frame
 * from a client is relayed as it came to every other client of its topic (the topic of the
 * URL's query), and the sender gets a tiny ack so the bench's windowed publisher works the
 * same against every system. On connect it sends `subscribed` with the topic's last 30
 * frames, kept in memory only, so connect-and-history has something to compare against.
 */

const port = Number(process.env.PORT ?? 8900)
const host = process.env.HOST ?? '127.0.0.1'
const historyLimit = 30
const maxPayloadBytes = 64 * 1024
const ack = Buffer.from('{"type":"ack"}')

interface Topic {
  clients: Set<WebSocket>
  /** The last historyLimit frames, oldest first. */
  history: Buffer[]
}

const topics = new Map<string, Topic>()
const http = createServer((request, response) => {
  response.writeHead(200, { 'content-type': 'text/plain' })
  response.end('ok')
})
const wss = new WebSocketServer({ server: http, perMessageDeflate: false, maxPayload: maxPayloadBytes })

wss.on('connection', (socket, request) => {
  const name = new URL(request.url ?? '/', 'http://limit').searchParams.get('topic') ?? 'general'
  let topic = topics.get(name)
  if (topic === undefined) topics.set(name, topic = { clients: new Set(), history: [] })
  const { clients, history } = topic
  clients.add(socket)
  socket.send(`{"type":"subscribed","topic":${JSON.stringify(name)},"history":[${history.join(',')}]}`)
  socket.on('message', (data: RawData, isBinary: boolean) => {
    if (isBinary) return
    const frame = data as Buffer
    for (const client of clients) if (client !== socket) client.send(frame, { binary: false })
    socket.send(ack, { binary: false })
    history.push(frame)
    if (history.length > historyLimit) history.shift()
  })
  socket.on('close', () => {
    clients.delete(socket)
  })
})

http.listen(port, host, () => {
  process.stdout.write(`limit: Server listening at http://${host}:${port}\n`)
})
process.on('SIGTERM', () => {
  for (const client of wss.clients) client.terminate()
  wss.close()
  http.close(() => { process.exit(0) })
})
