'use strict'
// The JS face Next loads. Thin by design: it maps Next's values to the native core's flat shapes
// and back, asks the core synchronously first (a hit never pays an async N-API hop), and never
// lets `get` reject or `set` throw. All state is module level: Next constructs the handler three
// times per request, so construction only looks up a shared native core.
//
// Here only what the package exports; the parts, in lib/: options.js (options, the purge hook),
// log.js, input.js (keys, tags and revalidation arguments checked), cores.js (one native core
// per configuration, BUILD_ID, the SIGTERM flush), value-cache.js, next-value.js (Next's values
// <-> native shapes), handler.js (the `cacheHandler` class), revalidate.js, use-cache.js (the
// `cacheHandlers` handler), metrics.js (Prometheus text, OpenTelemetry), receipts.js (`revalidate()`).

const binding = require('./binding.js')
const { FleetCacheError } = require('./error.js')
const { checkedOptions, fromNative } = require('./lib/options.js')
const { tagList } = require('./lib/input.js')
const { coreFor } = require('./lib/cores.js')
const { toInput } = require('./lib/next-value.js')
const { createCacheHandler } = require('./lib/handler.js')
const { createUseCacheHandler } = require('./lib/use-cache.js')
const { metrics, METRICS_CONTENT_TYPE, registerOpenTelemetry } = require('./lib/metrics.js')
const { revalidate } = require('./lib/receipts.js')

/** URL paths of cached pages and route handlers that carry any of `tags` (for CDN purges). */
async function pathsForTags(tags, options) {
  const list = tagList(tags, 'pathsForTags')
  try {
    return await coreFor(checkedOptions(options), undefined).pathsForTags(list)
  } catch (err) {
    throw err instanceof FleetCacheError ? err : fromNative(err)
  }
}

/** The page path and `/_next/data/<buildId>/<path>.json` of a pages-router key. */
function pagesRouterPaths(key, buildId) {
  return binding.pagesRouterPaths(String(key), String(buildId))
}

/** Counters and memory use of the core for `options`. */
function stats(options) {
  return coreFor(checkedOptions(options), undefined).stats()
}

module.exports = {
  createCacheHandler,
  createUseCacheHandler,
  pathsForTags,
  revalidate,
  pagesRouterPaths,
  pathOfKey: (key) => binding.pathOfKey(String(key)) ?? null,
  stats,
  metrics,
  METRICS_CONTENT_TYPE,
  registerOpenTelemetry,
  FleetCacheError,
  // for tests and tools
  _coreFor: (options, serverDistDir) => coreFor(checkedOptions(options), serverDistDir),
  _toInput: toInput,
  _checkedOptions: checkedOptions,
  _fromNative: fromNative,
}
