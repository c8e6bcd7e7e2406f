// GET /api/fleetcache-stats — this instance's fleetcache counters (README, "Stats"): memory use,
// hits and misses, breakers, the revalidation outbox. An operator's view; the e2e suite's fault
// scenarios read it to learn when a breaker opened. Keep it behind your own auth in production.
//
// fleetcache is required at run time from the app's node_modules (through Node's own `require`,
// which bundlers leave alone), so this reads the very module and native core Next loaded as
// `cacheHandler`; a bundled copy would hold a core of its own.
export const dynamic = 'force-dynamic'
export function GET() {
  const { createRequire } = process.getBuiltinModule('node:module')
  const { stats } = createRequire(`${process.cwd()}/package.json`)('fleetcache')
  return Response.json({ instance: process.env.FLEETCACHE_DEMO_INSTANCE, ...stats() })
}
