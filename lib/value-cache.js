'use strict'
// The Next values of recent hits, kept so that a hit of the same native copy is served as the
// same objects without crossing the N-API boundary again.

/**
 * The Next values of recent hits, by key, each tagged with the generation of the native copy it
 * was built from. `get` is told the generation held here; a hit of that generation comes back
 * as its `lastModified` alone (one double across the boundary: no object, no strings, no copy of
 * the bytes) and is served from here, so Next gets the same value objects again, as from its own
 * memory cache or a module-level Map handler (Next does not write to a value it got from a
 * cache; docs/configuration.md, "Hits"). A new generation (the entry was rewritten or reloaded) replaces the
 * value; a miss drops it. Bounded in bytes (a quarter of `memoryBytes`, at most 64 MiB), least
 * recently used out first.
 */
class ValueCache {
  constructor(budget) {
    this.budget = budget
    this.bytes = 0
    this.map = new Map()
  }
  /** The generation held for `key`, or undefined. */
  gen(key) {
    const e = this.map.get(key)
    return e === undefined ? undefined : e.gen
  }
  /** The value held for `key` as Next's `CacheHandlerValue` with `lastModified`, or undefined. */
  serve(key, lastModified) {
    const e = this.map.get(key)
    if (e === undefined) return undefined
    this.map.delete(key)
    this.map.set(key, e)
    const out = { lastModified, value: e.value }
    if (e.revalidate !== undefined) out.cacheControl = cacheControlOf(e.revalidate, e.expire)
    return out
  }
  set(key, gen, h, value) {
    const size = sizeOf(h)
    this.delete(key)
    if (size > this.budget) return
    this.map.set(key, { gen, value, revalidate: h.revalidate, expire: h.expire, size })
    this.bytes += size
    for (const [k, v] of this.map) {
      if (this.bytes <= this.budget) break
      this.map.delete(k)
      this.bytes -= v.size
    }
  }
  delete(key) {
    const old = this.map.get(key)
    if (old !== undefined) {
      this.bytes -= old.size
      this.map.delete(key)
    }
  }
}

/** Bytes a hit's Next value holds, near enough for the budget: its buffer, decoded strings at two bytes a character. */
function sizeOf(h) {
  let n = 256 + (h.buf === undefined ? 0 : h.buf.length) + 2 * (h.htmlLen || 0)
  for (const s of [h.headers, h.pageData, h.props, h.body, h.postponed]) if (s !== undefined) n += 2 * s.length
  return n
}

const valueCaches = new WeakMap()
function valueCacheOf(core) {
  let c = valueCaches.get(core)
  if (c === undefined) {
    c = new ValueCache(Math.min(64 * 1024 * 1024, Math.floor(core.stats().memoryBudget / 4)))
    valueCaches.set(core, c)
  }
  return c
}

/** Next's `cacheControl` (a fresh object per hit: Next may keep it). */
function cacheControlOf(revalidate, expire) {
  return expire === undefined ? { revalidate } : { revalidate, expire }
}

module.exports = { ValueCache, valueCacheOf, cacheControlOf }
