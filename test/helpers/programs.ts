import type { FastifyInstance } from 'fastify'
import { uniqueName } from './app.js'
import { ChatClient } from './chat.js'

/** A bot made by the session of `cookie`, with its key. */
export async function makeBot (app: FastifyInstance, cookie: string, name = uniqueName('bot')): Promise<{ name: string, key: string }> {
  const response = await app.inject({ method: 'POST', url: '/api/bots', headers: { cookie }, payload: { name } })
  if (response.statusCode !== 201) throw new Error(`POST /api/bots ${name}: ${response.statusCode} ${response.body}`)
  return { name, key: response.json<{ key: string }>().key }
}

/** The header of a program's request. */
export const bearer = (credential: string): Record<string, string> => ({ authorization: `Bearer ${credential}` })

/**
 * Opens /chat in memory (injectWS) as a program: with `Authorization: Bearer` (`bearer`) or
 * `?token=` (`token`), and no cookie or ticket.
 */
export async function connectProgram (app: FastifyInstance, credential: { bearer?: string, token?: string }, options: { topic?: string, headers?: Record<string, string> } = {}): Promise<ChatClient> {
  const query = new URLSearchParams()
  if (credential.token !== undefined) query.set('token', credential.token)
  if (options.topic !== undefined) query.set('topic', options.topic)
  const headers = { ...credential.bearer === undefined ? {} : bearer(credential.bearer), ...options.headers }
  let client: ChatClient | undefined
  await app.injectWS(`/chat?${query.toString()}`, { headers }, { onInit: (socket) => { client = new ChatClient(socket, true) } })
  if (client === undefined) throw new Error('injectWS gave no socket')
  return client
}
