import t, { type Test } from 'tap'
import { connect, type ChatClient } from '../helpers/chat.js'
import { startInstances } from '../helpers/instances.js'
import { unhurriedCommits } from '../helpers/app.js'
import type { MessageFrame } from '../../src/protocol.js'

// canopy_publish (migrations/0010_canopy_publish.sql) called in an application's own
// transaction on a real Postgres, with two instances' subscribers.

/** The next `count` messages of a client, failing on a duplicate id. */
async function collect (t: Test, client: ChatClient, count: number): Promise<MessageFrame[]> {
  const messages: MessageFrame[] = []
  while (messages.length < count) {
    const frame = await client.nextOf('message')
    if (messages.some((m) => m.id === frame.id)) t.fail(`message ${frame.id} delivered twice`)
    messages.push(frame)
  }
  return messages
}

t.test('canopy_publish in a transaction reaches every instance at commit, and nothing on rollback', async (t) => {
  const { postgres, instances: [{ app: a, user: alice }, { app: b, user: bob }] } = await startInstances(t, 2, {}, unhurriedCommits)
  const onA = await connect(a, alice.cookie, { topic: 'sqlpub' })
  await onA.nextOf('subscribed')
  const onB = await connect(b, bob.cookie, { topic: 'sqlpub' })
  await onB.nextOf('subscribed')
  const app = await postgres.client()
  // Over HTTP, so that no subscriber's frames are skipped waiting for an ack.
  const publishWs = async (instance: typeof a, who: typeof alice, text: string, ref: string): Promise<number> => {
    const response = await instance.inject({ method: 'POST', url: '/api/topics/sqlpub/messages', headers: { cookie: who.cookie }, payload: { text, ref } })
    return response.json<{ message: MessageFrame }>().message.id
  }

  await t.test('committed: once on both instances, in order with the others', async (t) => {
    t.equal(await publishWs(a, alice, 'before', 'w-1'), 1)
    await app.query('BEGIN')
    await app.query('INSERT INTO topics (name) VALUES ($1) ON CONFLICT DO NOTHING', ['app-side-effect'])
    const { rows } = await app.query<{ id: string }>("SELECT canopy_publish('sqlpub', $1, 'from sql', $2::jsonb, 'sql-1') AS id",
      [bob.username.toUpperCase(), JSON.stringify({ order: 17, items: ['a', 'b'] })])
    t.equal(Number(rows[0]?.id), 2, 'the next id, inside the transaction')
    await app.query('COMMIT')
    t.equal(await publishWs(b, bob, 'after', 'w-2'), 3)
    const expected = [[1, alice.username, 'before', undefined], [2, bob.username, 'from sql', { order: 17, items: ['a', 'b'] }], [3, bob.username, 'after', undefined]]
    for (const [client, name] of [[onA, 'a'], [onB, 'b']] as const) {
      const messages = await collect(t, client, 3)
      t.same(messages.map((m) => [m.id, m.author, m.text, m.data]), expected, `instance ${name}`)
    }
    const { rows: again } = await app.query<{ id: string }>("SELECT canopy_publish('sqlpub', $1, 'resent', NULL, 'sql-1') AS id", [bob.username])
    t.equal(Number(again[0]?.id), 2, 'a repeated ref: the first id, nothing new')
  })

  await t.test('rolled back: nothing delivered, and the next id is still gapless', async (t) => {
    await app.query('BEGIN')
    const { rows } = await app.query<{ id: string }>("SELECT canopy_publish('sqlpub', $1, 'never', NULL, 'sql-2') AS id", [alice.username])
    t.equal(Number(rows[0]?.id), 4)
    await app.query('ROLLBACK')
    t.equal(await publishWs(a, alice, 'next', 'w-3'), 4, 'the id the rollback gave back')
    for (const client of [onA, onB]) {
      const [message] = await collect(t, client, 1)
      t.same([message?.id, message?.text], [4, 'next'], 'the rolled-back message never came')
    }
    // A last SQL publish: were the rolled-back one delivered late, it would come before this.
    await app.query("SELECT canopy_publish('sqlpub', $1, 'last', NULL, NULL)", [alice.username])
    for (const client of [onA, onB]) {
      const [message] = await collect(t, client, 1)
      t.same([message?.id, message?.text], [5, 'last'])
    }
    const history = await a.inject({ url: '/api/topics/sqlpub/messages?limit=100', headers: { cookie: alice.cookie } })
    t.same(history.json<{ messages: MessageFrame[] }>().messages.map((m) => m.id), [1, 2, 3, 4, 5], 'gapless in the table')
  })

  onA.close()
  onB.close()
})
