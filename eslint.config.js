import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'node_modules/**', 'migrations/**', 'data/**', 'test-output/**', '.tap/**']
  }),
  {
    // `void promise` marks a deliberately unawaited promise whose errors are handled inside it.
    rules: { 'no-void': ['error', { allowAsStatement: true }] }
  }
]
