'use strict'
// `cacheHandlers: { default: require.resolve('fleetcache/use-cache'), remote: … }` in
// next.config.js (Next 16, Cache Components): the handler object for `'use cache'` and
// `'use cache: remote'`, configured from environment variables like `fleetcache/handler` and
// sharing its native core (memory tier, bucket, tag states, change feed).
module.exports = require('./index.js').createUseCacheHandler({})
