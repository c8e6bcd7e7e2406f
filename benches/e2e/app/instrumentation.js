// BENCH_HANDLER=fleetcache-hook / map-hook: the handler reaches Next through the hook Next reads
// when next.config.js sets no cacheHandler (fleetcache's README, "Hits without the per-request
// import"). Next awaits register() before it serves.
export async function register() {
  if (process.env.NEXT_RUNTIME !== 'nodejs') return
  if (process.env.BENCH_HANDLER === 'fleetcache-hook') {
    const { registerCacheHandler } = await import('fleetcache/instrumentation')
    if (!registerCacheHandler()) throw new Error('registerCacheHandler did not install fleetcache')
  }
  if (process.env.BENCH_HANDLER === 'map-hook') {
    const { default: MapHandler } = await import('./map-handler.cjs')
    globalThis[Symbol.for('@next/cache-handlers')] = { FetchCache: MapHandler }
  }
}
