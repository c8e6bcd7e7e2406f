'use strict'
// Next's values <-> the native core's flat shapes, with exact JS types both ways, and the lifetime
// a hit tells Next 15.x.

const { FleetCacheError } = require('../error.js')
const { lossless } = require('./input.js')
const { cacheControlOf } = require('./value-cache.js')

/**
 * Next 15.x takes a page's lifetime (`cacheControl`) from its own process only: the lifetimes its
 * renders set (a module-level map, keyed by the handler's key) and the build's prerender manifest,
 * never from the handler's answer (Next 16 prefers the answer's). So on 15.x an instance that did
 * not render a page at run time served it STALE one second after it was stored, and regenerated
 * it (the differential suite, `npm run conformance -- --next 15`). A hit fills that map for its
 * key when it lacks one, as the render did in the instance that made it. Not on 16, nor when the
 * app's `next` cannot be found from the working directory (then nothing changes).
 */
let nextLifetimes // undefined: not looked up yet; null: not needed or not found
function lifetimesOfNext15() {
  try {
    const paths = [process.cwd()]
    const pkg = require(require.resolve('next/package.json', { paths }))
    if (Number(String(pkg.version).split('.')[0]) !== 15) return null
    const m = require(require.resolve('next/dist/server/lib/incremental-cache/shared-cache-controls.external', { paths }))
    const map = m && m.SharedCacheControls && m.SharedCacheControls.cacheControls
    return map instanceof Map ? map : null
  } catch {
    return null
  }
}
const asIs = (out) => out
/** `out` (a page or route hit, or null) for `key`, its lifetime told to Next 15.x (see above). */
function withLifetime(key, out) {
  if (nextLifetimes === undefined) nextLifetimes = lifetimesOfNext15()
  if (nextLifetimes !== null && out && out.cacheControl !== undefined && !nextLifetimes.has(key)) {
    nextLifetimes.set(key, { ...out.cacheControl })
  }
  return out
}

function parseJson(s) {
  return s === undefined ? undefined : JSON.parse(s)
}

/**
 * A native hit → Next's `CacheHandlerValue`, with exact JS types (Buffers, a Map, undefined);
 * `cache` (a `ValueCache`, absent for a one-off read) keeps its value for the hits after it.
 */
function toNext(h, key, cache) {
  if (h === null || h === undefined) {
    if (cache !== undefined) cache.delete(key)
    return null
  }
  const out = { lastModified: h.lastModified, value: null }
  if (h.revalidate !== undefined) out.cacheControl = cacheControlOf(h.revalidate, h.expire)
  const buf = h.buf
  switch (h.kind) {
    case undefined:
      break
    case 'APP_PAGE': {
      let segmentData
      if (h.segNames !== undefined) {
        segmentData = new Map()
        const names = h.segNames
        const b = h.segBounds
        for (let i = 0; i < names.length; i++) segmentData.set(names[i], buf.subarray(b[2 * i], b[2 * i + 1]))
      }
      const htmlLen = h.htmlLen
      out.value = {
        kind: 'APP_PAGE',
        html: buf.toString('utf8', 0, htmlLen),
        rscData: h.rscLen === undefined ? undefined : buf.subarray(htmlLen, htmlLen + h.rscLen),
        postponed: h.postponed,
        headers: parseJson(h.headers),
        status: h.status,
        segmentData,
      }
      break
    }
    case 'APP_ROUTE':
      out.value = { kind: 'APP_ROUTE', body: buf, status: h.status, headers: parseJson(h.headers) }
      break
    case 'PAGES':
      out.value = { kind: 'PAGES', html: buf.toString('utf8', 0, h.htmlLen), pageData: parseJson(h.pageData), headers: parseJson(h.headers), status: h.status }
      break
    case 'REDIRECT':
      out.value = { kind: 'REDIRECT', props: parseJson(h.props) }
      break
    case 'FETCH':
      out.value = {
        kind: 'FETCH',
        data: { headers: parseJson(h.headers), body: h.body, status: h.status, url: h.url },
        revalidate: h.fetchRevalidate,
      }
      if (h.tags !== undefined) out.value.tags = h.tags
      break
    case 'IMAGE':
      out.value = {
        kind: 'IMAGE',
        etag: h.etag,
        upstreamEtag: h.upstreamEtag,
        buffer: buf,
        extension: h.extension,
        revalidate: h.fetchRevalidate,
      }
      break
    default:
      return null
  }
  if (cache !== undefined && h.gen !== undefined) cache.set(key, h.gen, h, out.value)
  return out
}

function stringArray(v) {
  return Array.isArray(v) ? v.filter((t) => typeof t === 'string') : []
}

/** Every tag that can invalidate this entry: ctx.tags, ctx.softTags, value tags, x-next-cache-tags. */
function tagsOf(data, ctx) {
  const tags = new Set([...stringArray(ctx.tags), ...stringArray(ctx.softTags)])
  if (data) {
    for (const t of stringArray(data.tags)) tags.add(t)
    const header = data.headers && data.headers['x-next-cache-tags']
    if (typeof header === 'string') {
      for (const t of header.split(',')) if (t) tags.add(t)
    }
  }
  return [...tags].map(lossless)
}

function buf(v, field) {
  if (v === undefined || v === null) return undefined
  if (Buffer.isBuffer(v)) return v
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
  throw new FleetCacheError('FLEETCACHE_INVALID_INPUT', `${field} must be a Buffer, got ${typeof v}`)
}

function json(v) {
  return v === undefined ? undefined : JSON.stringify(v)
}

/**
 * Response headers as JSON: Node's `OutgoingHttpHeaders` (a string, a number or an array of
 * strings per name). Anything else — a Symbol, a function, an object, an array holding one —
 * would be dropped or mangled by JSON without a word, so it is refused, naming the header.
 */
function headersJson(h, what) {
  if (h === undefined || h === null) return undefined
  if (typeof h !== 'object' || Array.isArray(h)) throw new FleetCacheError('FLEETCACHE_INVALID_INPUT', `${what} must be an object of header values, got ${Array.isArray(h) ? 'an array' : typeof h}`)
  for (const [name, v] of Object.entries(h)) {
    const ok = v === undefined || typeof v === 'string' || typeof v === 'number' || (Array.isArray(v) && v.every((x) => typeof x === 'string'))
    if (!ok) throw new FleetCacheError('FLEETCACHE_INVALID_INPUT', `${what}[${JSON.stringify(name)}] must be a string, a number or an array of strings, got ${Array.isArray(v) ? 'an array holding something else' : typeof v}`)
  }
  return JSON.stringify(h)
}

/** Next's `set(key, data, ctx)` → the native `SetInput`. */
function toInput(data, ctx) {
  const classKind = ctx.kind || (ctx.fetchCache === true ? 'FETCH' : undefined) || (data ? data.kind : undefined)
  const input = { classKind, tags: tagsOf(data, ctx) }
  // cacheControl applies to response-cache entries and notFound (`null`); FETCH carries its own.
  if (!data || data.kind !== 'FETCH') {
    const cc = ctx.cacheControl || (data && ctx.revalidate !== undefined ? { revalidate: ctx.revalidate } : undefined)
    if (cc && (typeof cc.revalidate === 'number' || cc.revalidate === false)) {
      input.hasCacheControl = true
      if (cc.revalidate === false) input.revalidateNever = true
      else input.revalidateSeconds = cc.revalidate
      if (typeof cc.expire === 'number') input.expire = cc.expire
    }
  }
  if (!data) return input
  if (typeof data !== 'object') throw new FleetCacheError('FLEETCACHE_INVALID_INPUT', `value must be an object or null, got ${typeof data}`)
  input.kind = data.kind
  switch (data.kind) {
    case 'APP_PAGE':
      input.html = data.html
      input.rscData = buf(data.rscData, 'rscData')
      input.postponed = data.postponed
      input.headers = headersJson(data.headers, 'headers')
      input.status = data.status
      if (data.segmentData !== undefined && data.segmentData !== null) {
        if (!(data.segmentData instanceof Map)) throw new FleetCacheError('FLEETCACHE_INVALID_INPUT', 'segmentData must be a Map')
        input.segNames = []
        input.segData = []
        for (const [k, v] of data.segmentData) {
          input.segNames.push(k)
          input.segData.push(buf(v, `segmentData[${k}]`))
        }
      }
      break
    case 'APP_ROUTE':
      input.buf = buf(data.body, 'body')
      input.status = data.status
      input.headers = headersJson(data.headers, 'headers')
      break
    case 'PAGES':
      input.html = data.html
      input.pageData = json(data.pageData)
      input.headers = headersJson(data.headers, 'headers')
      input.status = data.status
      break
    case 'REDIRECT':
      input.props = json(data.props)
      break
    case 'FETCH': {
      const d = data.data || {}
      input.headers = headersJson(d.headers, 'data.headers')
      input.body = d.body
      input.status = d.status
      input.url = d.url
      input.fetchRevalidate = data.revalidate
      if (Array.isArray(data.tags)) input.fetchTags = stringArray(data.tags)
      break
    }
    case 'IMAGE':
      input.buf = buf(data.buffer, 'buffer')
      input.etag = data.etag
      input.upstreamEtag = data.upstreamEtag
      input.extension = data.extension
      input.fetchRevalidate = data.revalidate
      break
    default:
      throw new FleetCacheError('FLEETCACHE_INVALID_INPUT', `unknown value kind ${JSON.stringify(data.kind)}`)
  }
  if (typeof input.status !== 'number') input.status = undefined
  return input
}

/** What a hit of `key` (a `kind` entry) is passed through before Next gets it (see withLifetime). */
function teller(kind, key) {
  if (kind === 'FETCH' || nextLifetimes === null) return asIs
  return (out) => withLifetime(key, out)
}

module.exports = { toNext, toInput, stringArray, teller }
