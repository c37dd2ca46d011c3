import fp from 'fastify-plugin'
import type { Database } from '../src/db/database.js'
import { openDatabase } from '../src/db/open.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Database
  }
}

/**
 * PGlite under DATA_DIR when DATABASE_URL is unset, a `pg` pool when it is set; pending
 * migrations are applied before anything else starts.
 */
export default fp(async function database (fastify) {
  const { databaseUrl, dataDir, statementTimeoutMs } = fastify.config
  const db = await openDatabase({ databaseUrl, dataDir, statementTimeoutMs })
  try {
    const applied = await db.migrate()
    if (applied.length > 0) fastify.log.info({ migrations: applied }, 'migrations applied')
  } catch (error) {
    await db.close()
    throw error
  }
  fastify.decorate('db', db)
  fastify.addHook('onClose', async () => { await db.close() })
  fastify.log.info({ database: db.description }, 'database ready')
}, { name: 'database', fastify: '5.x', dependencies: ['config'] })
