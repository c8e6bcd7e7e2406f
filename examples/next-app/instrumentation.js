// Run-time seeding (README, "No deploy step?"): with FLEETCACHE_SEED_ON_START=1, one instance of
// the fleet puts this build's prerendered pages into the shared store in the background.
// With FLEETCACHE_REGISTER_HANDLER=1 (and no cacheHandler in next.config.js), fleetcache becomes
// Next's cache handler from here (README, "Hits without the per-request import").
export async function register() {
  if (process.env.NEXT_RUNTIME !== 'nodejs') return
  if (process.env.FLEETCACHE_REGISTER_HANDLER === '1') {
    const { registerCacheHandler } = await import('fleetcache/instrumentation')
    if (!registerCacheHandler()) throw new Error('fleetcache: registerCacheHandler did not install the handler')
  }
  if (process.env.FLEETCACHE_SEED_ON_START === '1') {
    const { register: seedOnce } = await import('fleetcache/instrumentation')
    await seedOnce({ distDir: process.env.FLEETCACHE_E2E_DIST || '.next' })
  }
}
