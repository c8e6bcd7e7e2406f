// Cache Components on fleetcache: ISR (pages, route handlers, fetch) through `cacheHandler`, and
// `'use cache'` / `'use cache: remote'` results through `cacheHandlers`, on one shared core.
// FLEETCACHE_E2E_BUILTIN=1 builds the same app with Next's own caches (the e2e suite's reference).
const path = require('node:path')
const builtin = process.env.FLEETCACHE_E2E_BUILTIN === '1'
/** @type {import('next').NextConfig} */
module.exports = {
  cacheComponents: true,
  partialPrefetching: true,
  ...(builtin
    ? {}
    : {
        cacheHandler: require.resolve('fleetcache/handler'),
        cacheHandlers: { default: require.resolve('fleetcache/use-cache'), remote: require.resolve('fleetcache/use-cache') },
        // Safe here because both interfaces go to fleetcache: 0 would turn Next's built-in
        // 'use cache' handler into a no-op, losing every result of an app that relies on it.
        cacheMaxMemorySize: 0,
      }),
  distDir: process.env.FLEETCACHE_E2E_DIST || '.next',
  serverExternalPackages: ['fleetcache'],
  turbopack: { root: path.join(__dirname, '..', '..') },
}
