'use strict'
// Revalidations, shared by both interfaces: one write to DynamoDB for the calls Next makes to
// each handler in one turn.

const binding = require('../binding.js')
const { FleetCacheError } = require('../error.js')
const { debugOn } = require('./log.js')

/**
 * Next calls every `cacheHandlers` entry's `updateTags` and then the `cacheHandler`'s
 * `revalidateTag` with the same tags and durations, in one turn of the event loop: with both
 * pointing at fleetcache, that is one revalidation, written to DynamoDB once. Calls with the same
 * core, tags and `expire` in the same turn share one write. `durations` undefined or
 * `{expire: 0}` expires now; `{expire: N}` marks stale now, expired in N s.
 */
const inFlightRevalidations = new Map()
function revalidateOnce(core, tags, expire) {
  if (tags.length === 0) return Promise.resolve()
  if (debugOn) binding.debug('revalidateTag', `${JSON.stringify(tags)}${expire === undefined ? '' : ` expire ${expire}`}`)
  const key = JSON.stringify([[...tags].sort(), expire === undefined ? null : expire])
  let byCore = inFlightRevalidations.get(core)
  if (byCore === undefined) {
    byCore = new Map()
    inFlightRevalidations.set(core, byCore)
  }
  let p = byCore.get(key)
  if (p === undefined) {
    p = core.revalidateTags(tags, expire).then((r) => {
      if (r.ok) return
      if (r.code === 'FLEETCACHE_INVALID_INPUT') throw new FleetCacheError(r.code, `revalidateTag(${JSON.stringify(tags)}): ${r.message}`)
      throw new FleetCacheError(r.code, `revalidateTag(${JSON.stringify(tags)}) did not reach the tag store: ${r.message}`)
    })
    byCore.set(key, p)
    setImmediate(() => {
      byCore.delete(key)
      if (byCore.size === 0) inFlightRevalidations.delete(core)
    })
  }
  return p
}

module.exports = { revalidateOnce }
