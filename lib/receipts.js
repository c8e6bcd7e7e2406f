'use strict'
// `revalidate()`: a revalidation for route handlers, webhooks and the `fleetcache revalidate`
// command, which can wait for its receipt: every live instance (a heartbeat, docs/operating.md)
// having applied it, or the timeout naming the ones that have not.

const { FleetCacheError } = require('../error.js')
const { checkedOptions, fromNative } = require('./options.js')
const { tagList, expireOf, invalid, describe } = require('./input.js')
const { coreFor, servedCores } = require('./cores.js')
const { revalidateOnce } = require('./revalidate.js')

/** How often a waiting receipt reads the acknowledgements (one DynamoDB Query per feed event). */
const RECEIPT_POLL_MS = 50

/** Next's `'max'` profile: stale now, expired never (INFINITE_CACHE). */
const MAX_EXPIRE_S = 4_294_967_294

/**
 * Revalidates `tags` and the pages at `paths` (each as `revalidatePath(path)` names it, the tag
 * `_N_T_<path>`). `profile`: undefined (expired now), `'max'` (stale now, regenerated in the
 * background) or `{ expire: seconds }`. With `wait`, resolves to the receipt
 * `{ events, madeAt, queued, instances: [{ id, host, buildId, appliedAfterMs }], missing: [...] }`
 * once every live instance has applied it, or at `timeoutMs` (default 10 s), with its CDN purge
 * (`cdn`) when this instance purges one; `onApplied(instance)` is called as each instance is seen
 * to have applied it. Without `wait`, resolves once it is recorded (or queued). `options`: the
 * handler's; default the first handler this process made.
 */
async function revalidate(request, options) {
  if (request === null || typeof request !== 'object') throw invalid(`revalidate: expected { tags, paths, profile, wait, timeoutMs }, got ${describe(request)}`)
  const { tags = [], paths = [], profile, wait = false, timeoutMs = 10_000, onApplied } = request
  const pathList = typeof paths === 'string' ? [paths] : paths
  if (!Array.isArray(pathList) || pathList.some((p) => typeof p !== 'string' || !p.startsWith('/'))) {
    throw invalid(`revalidate: paths must be URL paths starting with "/", got ${describe(paths)}`)
  }
  const list = [...tagList(tags, 'revalidate'), ...tagList(pathList.map((p) => `_N_T_${p}`), 'revalidate')]
  if (list.length === 0) throw invalid('revalidate: give at least one tag or path')
  const expire = profile === 'max' ? MAX_EXPIRE_S : expireOf(profile, 'revalidate')
  if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) throw invalid(`revalidate: timeoutMs must be a number of ms, got ${describe(timeoutMs)}`)
  let core
  if (options !== undefined) core = coreFor(checkedOptions(options), undefined)
  else core = servedCores.values().next().value
  if (core === undefined) throw new FleetCacheError('FLEETCACHE_CONFIG', 'revalidate: no handler in this process yet; pass the options of the cache handler')
  if (!wait) return revalidateOnce(core, list, expire)
  if (onApplied !== undefined && typeof onApplied !== 'function') throw invalid(`revalidate: onApplied must be a function, got ${describe(onApplied)}`)
  const until = Date.now() + timeoutMs
  let receipt
  try {
    const pending = await core.startReceipt(list, expire, timeoutMs)
    const told = new Set()
    for (;;) {
      receipt = await pending.read()
      for (const i of receipt.instances) {
        if (told.has(i.id)) continue
        told.add(i.id)
        if (onApplied) {
          try {
            onApplied(i)
          } catch {}
        }
      }
      if (receipt.queued || receipt.missing.length === 0 || Date.now() >= until) break
      await new Promise((r) => setTimeout(r, RECEIPT_POLL_MS))
    }
    const cdn = await pending.cdn(Math.max(0, until - Date.now()))
    if (cdn !== undefined && cdn !== null) receipt.cdn = cdn
  } catch (err) {
    throw err instanceof FleetCacheError ? err : fromNative(err)
  }
  return receipt
}

module.exports = { revalidate, MAX_EXPIRE_S }
