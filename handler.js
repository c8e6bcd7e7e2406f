'use strict'
// `cacheHandler: require.resolve('fleetcache/handler')` in next.config.js: a handler configured
// entirely from environment variables (FLEETCACHE_BUCKET, FLEETCACHE_TABLE, AWS_REGION, ...).
module.exports = require('./index.js').createCacheHandler({})
