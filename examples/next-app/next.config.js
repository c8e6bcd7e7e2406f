// fleetcache as Next's cache handler, configured from FLEETCACHE_* / AWS_* environment variables.
/** @type {import('next').NextConfig} */
// FLEETCACHE_E2E_BUILTIN=1 builds the same app with Next's own cache (the e2e suite's reference).
const builtin = process.env.FLEETCACHE_E2E_BUILTIN === '1'
// FLEETCACHE_REGISTER_HANDLER=1: no cacheHandler here; instrumentation.js hands fleetcache to Next
// through its hook (README, "Hits without the per-request import").
const registered = process.env.FLEETCACHE_REGISTER_HANDLER === '1'
module.exports = {
  ...(builtin ? {} : registered ? { cacheMaxMemorySize: 0 } : { cacheHandler: require.resolve('fleetcache/handler'), cacheMaxMemorySize: 0 }), // fleetcache keeps its own memory tier
  distDir: process.env.FLEETCACHE_E2E_DIST || '.next',
  serverExternalPackages: ['fleetcache'], // a native addon: loaded from node_modules, never bundled
  images: { customCacheHandler: true },
  turbopack: { root: require('node:path').join(__dirname, '..', '..') },
}
