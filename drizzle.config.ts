import { defineConfig } from 'drizzle-kit'

// `npm run db:generate` reads the schema only; it never connects to a database.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './migrations'
})
