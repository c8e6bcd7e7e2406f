// One build, six cache handlers, picked at `next start` by BENCH_HANDLER:
//   builtin          Next's own cache (its memory LRU in front of .next on disk)
//   map              a module-level JS Map as `cacheHandler`: the floor of any custom handler
//   map-hook         the same Map handed to Next by instrumentation.js through the hook Next reads
//                    when no `cacheHandler` is set (no per-request import() of the handler module)
//   fleetcache       fleetcache as `cacheHandler` on the local S3 + DynamoDB server (FLEETCACHE_* / AWS_*)
//   fleetcache-hook  fleetcache through that hook: `registerCacheHandler()` in instrumentation.js
//   forte            @fortedigital/nextjs-cache-handler on Redis, as its README's quick start sets it up
const path = require('node:path')
const which = process.env.BENCH_HANDLER || 'builtin'
const handlers = {
  builtin: null,
  map: () => require.resolve('./map-handler.cjs'),
  'map-hook': null,
  fleetcache: () => require.resolve('fleetcache/handler'),
  'fleetcache-hook': null,
  forte: () => require.resolve('./forte-handler.mjs'),
}
if (!(which in handlers)) throw new Error(`BENCH_HANDLER must be one of ${Object.keys(handlers).join(', ')}, got ${which}`)
/** @type {import('next').NextConfig} */
module.exports = {
  ...(handlers[which] ? { cacheHandler: handlers[which]() } : {}),
  // The custom handlers that keep their own memory tier (or are one) switch Next's off, as
  // fleetcache's README says; forte's README leaves it on.
  ...(which !== 'builtin' && which !== 'forte' ? { cacheMaxMemorySize: 0 } : {}),
  serverExternalPackages: ['fleetcache'],
  turbopack: { root: path.join(__dirname) },
}
