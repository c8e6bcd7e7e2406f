// Run-time seeding (README, "No deploy step?"): with FLEETCACHE_SEED_ON_START=1, one instance of
// the fleet puts this build's prerendered pages into the shared store in the background.
export async function register() {
  if (process.env.NEXT_RUNTIME === 'nodejs' && process.env.FLEETCACHE_SEED_ON_START === '1') {
    const { register: seedOnce } = await import('fleetcache/instrumentation')
    await seedOnce({ distDir: process.env.FLEETCACHE_E2E_DIST || '.next' })
  }
}
