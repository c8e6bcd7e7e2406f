'use strict'
// Input from Next and from apps, checked: keys and tags as the core receives them (losslessly),
// revalidation arguments, and the errors wrong types get.

const { FleetCacheError } = require('../error.js')

/**
 * A JS string as the core receives it, losslessly. N-API hands strings over as UTF-8, which
 * turns every lone surrogate into U+FFFD, so `'/a\uD800b'` and `'/a\uFFFDb'` would be one key.
 * Well-formed strings without U+FFFF pass unchanged (the common case: two scans, no copy);
 * others become U+FFFF followed by the string with each lone surrogate and each U+FFFF written
 * as U+FFFF + four hex digits — well-formed, starting with U+FFFF, and decodable, so no two
 * strings meet.
 */
function lossless(s) {
  if (s.isWellFormed() && !s.includes('\uFFFF')) return s
  let out = '\uFFFF'
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        out += s[i] + s[i + 1]
        i++
        continue
      }
    }
    if ((c >= 0xd800 && c <= 0xdfff) || c === 0xffff) out += '\uFFFF' + c.toString(16).padStart(4, '0')
    else out += s[i]
  }
  return out
}

function invalid(message) {
  return new FleetCacheError('FLEETCACHE_INVALID_INPUT', message)
}

/** Tags as given to `revalidateTag`/`updateTags`: a string or an array of strings, else a FLEETCACHE_INVALID_INPUT error. */
function tagList(tags, what) {
  const list = typeof tags === 'string' ? [tags] : tags
  if (!Array.isArray(list)) throw invalid(`${what}: tags must be a string or an array of strings, got ${describe(tags)}`)
  for (const t of list) {
    if (typeof t !== 'string') throw invalid(`${what}: every tag must be a string, got ${describe(t)}`)
    if (t.length === 0) throw invalid(`${what}: a tag must not be empty`)
  }
  return list.map(lossless)
}

/** `durations` of a revalidation: undefined, or `{ expire?: number }` (checked for range by the core). */
function expireOf(durations, what) {
  if (durations === undefined || durations === null) return undefined
  if (typeof durations !== 'object') throw invalid(`${what}: durations must be an object like { expire: 0 }, got ${describe(durations)}`)
  const e = durations.expire
  if (e === undefined || e === null) return undefined
  if (typeof e !== 'number') throw invalid(`${what}: durations.expire must be a number of seconds, got ${describe(e)}`)
  return e
}

/** The tags and `expire` of a revalidation, or a counted FLEETCACHE_INVALID_INPUT error. */
function checkedRevalidation(core, tags, durations, what) {
  try {
    return [tagList(tags, what), expireOf(durations, what)]
  } catch (err) {
    core.noteInvalid(`${what} refused`, err.message)
    throw err
  }
}

function describe(v) {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v === 'string' ? JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v) : typeof v
}

module.exports = { lossless, invalid, tagList, expireOf, checkedRevalidation, describe }
