// Preloaded into a server process by the bench (node --expose-gc --import): on SIGWINCH it
// collects garbage and writes process.memoryUsage() as one line to stderr. SIGWINCH because
// its default is to do nothing and nothing else here listens to it (close-with-grace shuts
// Canopy down on SIGUSR2, and SIGUSR1 starts the inspector). Nothing else changes.
process.on('SIGWINCH', () => {
  globalThis.gc?.()
  globalThis.gc?.()
  process.stderr.write(`BENCH_MEMORY ${JSON.stringify(process.memoryUsage())}\n`)
})
