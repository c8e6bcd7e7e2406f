'use strict'
// The cache handler class Next's `cacheHandler` loads: a hit answered synchronously from memory
// when it can be, `get` never rejecting, `set` rejecting only for input of the wrong type.

const binding = require('../binding.js')
const { FleetCacheError } = require('../error.js')
const { checkedOptions } = require('./options.js')
const { warn, debugOn } = require('./log.js')
const { lossless, invalid, checkedRevalidation, describe } = require('./input.js')
const { coreFor, adopted, servedCores } = require('./cores.js')
const { valueCacheOf } = require('./value-cache.js')
const { toNext, toInput, stringArray, teller } = require('./next-value.js')
const { revalidateOnce } = require('./revalidate.js')

function getArgs(ctx) {
  const c = ctx !== null && typeof ctx === 'object' ? ctx : {}
  const kind = typeof c.kind === 'string' ? c.kind : c.kindHint === 'fetch' ? 'FETCH' : undefined
  if (kind === 'FETCH') {
    const tags = Array.isArray(c.tags) ? stringArray(c.tags).map(lossless) : undefined
    const softTags = Array.isArray(c.softTags) ? stringArray(c.softTags).map(lossless) : undefined
    return [kind, tags, softTags, typeof c.revalidate === 'number' && c.revalidate >= 0 ? c.revalidate : undefined]
  }
  return [kind, undefined, undefined, undefined]
}


/**
 * Returns a cache handler class for Next's `cacheHandler`, configured by `options` (environment
 * variables fill what is not given). Invalid options throw at once, naming the option.
 */
function createCacheHandler(options) {
  // During `next build` the core keeps entries in the process unless `writeDuringBuild` says
  // otherwise (docs/configuration.md, "The build phase"): a build stage needs no AWS configuration.
  const base = checkedOptions(options)
  // Fail fast on configuration errors, at require time rather than on the first request.
  servedCores.add(coreFor(base, undefined))

  // Next makes a handler per request: once the core has its build, it is not looked up again.
  let adoptedCore
  class FleetCacheHandler {
    constructor(ctx) {
      if (ctx !== undefined && ctx !== null && typeof ctx !== 'object') {
        throw invalid(`new FleetCacheHandler(ctx): ctx is the context object Next passes, got ${describe(ctx)}`)
      }
      const core = adoptedCore !== undefined ? adoptedCore : coreFor(base, ctx && ctx.serverDistDir)
      if (adoptedCore === undefined && adopted.has(core)) adoptedCore = core
      this.core = core
      this.values = valueCacheOf(core)
    }

    get(key, ctx) {
      try {
        if (typeof key !== 'string') {
          this.core.noteInvalid('get with a bad key, serving a miss', `key must be a string, got ${describe(key)}`)
          return Promise.resolve(null)
        }
        const [kind, tags, softTags, revalidate] = getArgs(ctx)
        const nextKey = key
        key = lossless(key)
        const cache = this.values
        // Pages and routes: their lifetime for Next 15.x (fetch entries carry theirs in the value).
        const told = teller(kind, nextKey)
        let hit = this.core.get(key, kind, tags, softTags, revalidate, cache.gen(key))
        if (typeof hit === 'number') {
          const out = cache.serve(key, hit)
          if (out !== undefined) return Promise.resolve(told(out))
          // The value cache let go of that generation meanwhile: ask for the whole hit.
          hit = this.core.get(key, kind, tags, softTags, revalidate, undefined)
        }
        if (!(hit instanceof Promise)) return Promise.resolve(told(toNext(hit, key, cache)))
        return hit.then((h) => told(toNext(h, key, cache)), (err) => {
          warn('get failed, serving a miss', err && err.message)
          return null
        })
      } catch (err) {
        warn('get failed, serving a miss', err && err.message)
        return Promise.resolve(null)
      }
    }

    /** Rejects only for input of the wrong type (FLEETCACHE_INVALID_INPUT); store failures are logged and counted. */
    async set(key, data, ctx) {
      let input
      try {
        if (typeof key !== 'string') throw invalid(`set: key must be a string, got ${describe(key)}`)
        if (ctx !== undefined && ctx !== null && typeof ctx !== 'object') throw invalid(`set: ctx must be an object, got ${describe(ctx)}`)
        input = toInput(data, ctx || {})
      } catch (err) {
        this.core.noteInvalid('set refused', err && err.message)
        throw err instanceof FleetCacheError ? err : invalid(String(err && err.message))
      }
      key = lossless(key)
      if (debugOn) binding.debug('set', `${key} (${input.kind || 'notFound'})`)
      let pending
      try {
        pending = this.core.set(key, input)
      } catch (err) {
        // A field of the wrong type, found while converting it (the message names the field).
        const e = invalid(`set(${JSON.stringify(key)}): ${err && err.message}`)
        this.core.noteInvalid('set refused', e.message)
        throw e
      }
      const r = await pending
      if (!r.ok && r.code === 'FLEETCACHE_INVALID_INPUT') throw new FleetCacheError(r.code, `set(${JSON.stringify(key)}): ${r.message}`)
    }

    async revalidateTag(tags, durations) {
      const [list, expire] = checkedRevalidation(this.core, tags, durations, 'revalidateTag')
      await revalidateOnce(this.core, list, expire)
    }

    resetRequestCache() {}
  }
  return FleetCacheHandler
}

module.exports = { createCacheHandler }
