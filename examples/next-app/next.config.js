// fleetcache as Next's cache handler, configured from FLEETCACHE_* / AWS_* environment variables.
/** @type {import('next').NextConfig} */
module.exports = {
  cacheHandler: require.resolve('fleetcache/handler'),
  cacheMaxMemorySize: 0, // fleetcache keeps its own bounded memory tier
  images: { customCacheHandler: true },
  turbopack: { root: require('node:path').join(__dirname, '..', '..') },
}
