// GET /api/cache-stats — this instance's fleetcache counters (`stats()`, README "Configure
// Next"): memory use, hits and misses, breakers, the outbox. An operator's view; the e2e suite's
// fault scenarios read it to learn when a breaker opened. Keep it behind your own auth in
// production.
//
// In an app that installed fleetcache from the registry, `import { stats } from 'fleetcache'`
// (with `serverExternalPackages: ['fleetcache']`) does the same. This example links the
// repository (`file:../..`), which Next does not treat as an external package and would bundle,
// so it requires fleetcache at run time through Node's own `require`: the very module, and native
// core, Next loaded as `cacheHandler`.
import { connection } from 'next/server'
export async function GET() {
  await connection() // at request time, never prerendered (Cache Components)
  const { createRequire } = process.getBuiltinModule('node:module')
  const { stats } = createRequire(`${process.cwd()}/package.json`)('fleetcache')
  return Response.json({ instance: process.env.FLEETCACHE_DEMO_INSTANCE, ...stats() })
}
