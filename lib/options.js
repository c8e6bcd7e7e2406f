'use strict'
// Options as the core takes them: checked in the core (the one option list), with the JS face's
// own options (`logger`, `cdn.purge`) taken out first.

const binding = require('../binding.js')
const { FleetCacheError } = require('../error.js')
const { useLogger } = require('./log.js')

/** A native error (a JS Error whose `code` is the core's `FLEETCACHE_*` code) as a FleetCacheError. */
function fromNative(err) {
  if (err instanceof FleetCacheError) return err
  const code = err && typeof err.code === 'string' && err.code.startsWith('FLEETCACHE_') ? err.code : 'FLEETCACHE_INTERNAL'
  return new FleetCacheError(code, String(err && err.message !== undefined ? err.message : err), { cause: err })
}

/**
 * Checks option names and types in the core (the one option list) and returns the options the
 * core takes. `logger` is the JS face's own option: it is checked and installed here.
 */
function checkedOptions(options) {
  let native = options
  let purge
  if (options !== null && typeof options === 'object' && !Array.isArray(options)) {
    if ('logger' in options) {
      const { logger, ...rest } = options
      useLogger(logger)
      native = rest
    }
    const cdn = native.cdn
    if (cdn !== null && typeof cdn === 'object' && !Array.isArray(cdn) && 'purge' in cdn) {
      const { purge: hook, ...rest } = cdn
      if (hook !== undefined && hook !== null && typeof hook !== 'function') {
        throw new FleetCacheError('FLEETCACHE_CONFIG', `\`cdn.purge\` must be a function, got ${typeof hook}`)
      }
      purge = hook === null ? undefined : hook
      native = { ...native, cdn: rest }
    }
  }
  try {
    binding.checkOptions(native)
  } catch (err) {
    throw fromNative(err)
  }
  const out = native === undefined || native === null ? {} : native
  if (purge !== undefined) Object.defineProperty(out, PURGE_HOOK, { value: purge, enumerable: false })
  return out
}

/** Where `checkedOptions` keeps `cdn.purge` (not an option the core sees, nor part of a core's identity). */
const PURGE_HOOK = Symbol('fleetcache.cdn.purge')

/** Hands the core's planned purges to the app's `cdn.purge(batch)` and reports how each went. */
function usePurgeHook(core, hook) {
  try {
    core.setPurgeHook((id, paths, files, wildcards, cost, widened) => {
      Promise.resolve()
        .then(() => hook({ paths, files, wildcards, cost, widened }))
        .then(
          () => core.purgeSettled(id, null),
          (err) => core.purgeSettled(id, String((err && err.message) || err || 'rejected')),
        )
    })
  } catch (err) {
    throw fromNative(err)
  }
}

module.exports = { fromNative, checkedOptions, PURGE_HOOK, usePurgeHook }
