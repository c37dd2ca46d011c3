import { createServer } from 'node:http'
import { createAdapter } from '@socket.io/postgres-adapter'
import pg from 'pg'
import { Server } from 'socket.io'

/**
 * The peer: what a user would build with Socket.IO 4 instead. `socket.join(topic)` on
 * connect, `io.to(topic).emit` on publish, with the author and the server's time added, and
 * an ack to the publisher. With DATABASE_URL set it runs with @socket.io/postgres-adapter, so
 * several instances on one Postgres act as one (the adapter's README setup). On connect it
 * emits `subscribed` with the topic's last 30 messages, kept in memory only.
 */

const port = Number(process.env.PORT ?? 8901)
const host = process.env.HOST ?? '127.0.0.1'
const databaseUrl = process.env.DATABASE_URL
const historyLimit = 30
const maxPayloadBytes = 64 * 1024

interface Message { topic: string, author: string, text: string, at: string }

const http = createServer((request, response) => {
  response.writeHead(200, { 'content-type': 'text/plain' })
  response.end('ok')
})
const io = new Server(http, { transports: ['websocket'], serveClient: false, maxHttpBufferSize: maxPayloadBytes })

let pool: pg.Pool | undefined
if (databaseUrl !== undefined && databaseUrl !== '') {
  pool = new pg.Pool({ connectionString: databaseUrl })
  await pool.query(`
    CREATE TABLE IF NOT EXISTS socket_io_attachments (
        id          bigserial UNIQUE,
        created_at  timestamptz DEFAULT NOW(),
        payload     bytea
    );
  `)
  pool.on('error', (error) => { process.stderr.write(`socketio: Postgres error ${error.message}\n`) })
  io.adapter(createAdapter(pool))
}

const histories = new Map<string, Message[]>()

io.on('connection', (socket) => {
  const { topic, user } = socket.handshake.query
  const name = typeof topic === 'string' && topic !== '' ? topic : 'general'
  const author = typeof user === 'string' && user !== '' ? user : 'anonymous'
  void socket.join(name)
  socket.emit('subscribed', { topic: name, history: histories.get(name) ?? [] })
  socket.on('publish', (input: { topic?: unknown, text?: unknown }, ack?: unknown) => {
    if (typeof input?.topic !== 'string' || typeof input.text !== 'string') return
    const message: Message = { topic: input.topic, author, text: input.text, at: new Date().toISOString() }
    io.to(message.topic).emit('message', message)
    let history = histories.get(message.topic)
    if (history === undefined) histories.set(message.topic, history = [])
    history.push(message)
    if (history.length > historyLimit) history.shift()
    if (typeof ack === 'function') ack({ at: message.at })
  })
})

http.listen(port, host, () => {
  process.stdout.write(`socketio: Server listening at http://${host}:${port}\n`)
})
process.on('SIGTERM', () => {
  io.close(() => {
    void pool?.end().finally(() => { process.exit(0) })
    if (pool === undefined) process.exit(0)
  })
  setTimeout(() => { process.exit(0) }, 3000).unref()
})
