import neostandard from 'neostandard'
import globals from 'globals'

export default [
  ...neostandard({
    ts: true,
    // client/types/ is generated from client/src/ (test/client/types.test.ts keeps it current).
    ignores: ['dist/**', 'node_modules/**', 'migrations/**', 'data/**', 'test-output/**', '.tap/**', 'client/types/**']
  }),
  {
    // `void promise` marks a deliberately unawaited promise whose errors are handled inside it.
    rules: { 'no-void': ['error', { allowAsStatement: true }] }
  },
  {
    // TypeBox's idiom: a schema and its static type share one name.
    files: ['src/protocol.ts'],
    rules: { '@typescript-eslint/no-redeclare': 'off' }
  },
  {
    // The page's ES modules run in the browser.
    files: ['public/**/*.js'],
    languageOptions: { globals: globals.browser }
  }
]
