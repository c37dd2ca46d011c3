import neostandard from 'neostandard'
import globals from 'globals'

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'node_modules/**', 'migrations/**', 'data/**', 'test-output/**', '.tap/**']
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
