// fleetcache as Next's cache handler, configured from FLEETCACHE_* / AWS_* environment variables.
/** @type {import('next').NextConfig} */
// FLEETCACHE_E2E_BUILTIN=1 builds the same app with Next's own cache (the e2e suite's reference).
const builtin = process.env.FLEETCACHE_E2E_BUILTIN === '1'
// FLEETCACHE_REGISTER_HANDLER=1: no cacheHandler here; instrumentation.js hands fleetcache to Next
// through its hook (README, "Hits without the per-request import").
const registered = process.env.FLEETCACHE_REGISTER_HANDLER === '1'
// 'use cache' results (Next 16; the differential suite's /conf/uc and /conf/remote) go to fleetcache
// too: with cacheMaxMemorySize 0, Next's own 'use cache' handler would keep nothing.
const useCacheHandlers = { cacheHandlers: { default: require.resolve('fleetcache/use-cache'), remote: require.resolve('fleetcache/use-cache') } }
module.exports = {
  ...(builtin ? {} : registered ? { cacheMaxMemorySize: 0, ...useCacheHandlers } : { cacheHandler: require.resolve('fleetcache/handler'), cacheMaxMemorySize: 0, ...useCacheHandlers }), // fleetcache keeps its own memory tier
  experimental: { useCache: true }, // 'use cache' without Cache Components (Next 16)
  distDir: process.env.FLEETCACHE_E2E_DIST || '.next',
  serverExternalPackages: ['fleetcache'], // a native addon: loaded from node_modules, never bundled
  images: { customCacheHandler: true },
  turbopack: { root: require('node:path').join(__dirname, '..', '..') },
}
