'use strict'
// The JS face Next loads. Thin by design: it maps Next's values to the native core's flat shapes
// and back, asks the core synchronously first (a hit never pays an async N-API hop), and never
// lets `get` reject or `set` throw. All state is module level: Next constructs the handler three
// times per request, so construction only looks up a shared native core.

const fs = require('node:fs')
const path = require('node:path')
const binding = require('./binding.js')
const { FleetCacheError } = require('./error.js')

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

// ---- logs -----------------------------------------------------------------------------------

const LEVELS = ['error', 'warn', 'info', 'debug']
let installedLogger

/**
 * Routes fleetcache's log lines to `logger` (`{ error, warn, info, debug }` functions: console,
 * pino, winston…, each called with one string `"<event>: <message>"`), instead of stderr.
 * `undefined`/`null` leaves the lines where they are. One logger per process: the last wins.
 */
function useLogger(logger) {
  if (logger === undefined || logger === null) return
  if (typeof logger !== 'object' && typeof logger !== 'function') {
    throw new FleetCacheError('FLEETCACHE_CONFIG', `\`logger\` must be an object with error/warn/info/debug functions, got ${typeof logger}`)
  }
  const missing = ['error', 'warn'].filter((l) => typeof logger[l] !== 'function')
  if (missing.length > 0) {
    throw new FleetCacheError('FLEETCACHE_CONFIG', `\`logger\` has no ${missing.join('/')} function (it needs error, warn, info and debug; info/debug may fall back to log)`)
  }
  if (installedLogger === logger) return
  installedLogger = logger
  binding.setLogSink((level, event, message) => {
    const line = event ? `${event}: ${message}` : message
    const fn = typeof logger[level] === 'function' ? logger[level] : typeof logger.log === 'function' ? logger.log : undefined
    if (fn === undefined || !LEVELS.includes(level)) return
    try {
      fn.call(logger, line)
    } catch {
      // A throwing logger must not take the request down with it.
    }
  })
}

// ---- keys -----------------------------------------------------------------------------------

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

// ---- shared native cores -------------------------------------------------------------------

const cores = new Map()
const buildIds = new Map()

/** `<distDir>/BUILD_ID` next to Next's `serverDistDir`, read once per directory. */
function buildIdFromDist(serverDistDir) {
  if (typeof serverDistDir !== 'string') return undefined
  if (buildIds.has(serverDistDir)) return buildIds.get(serverDistDir)
  let id
  try {
    id = fs.readFileSync(path.join(serverDistDir, '..', 'BUILD_ID'), 'utf8').trim() || undefined
  } catch {
    id = undefined
  }
  buildIds.set(serverDistDir, id)
  return id
}

/**
 * The one native core for these options, created on first use: one per process, whatever the
 * build (Next's BUILD_ID is adopted by the core when a handler is constructed with
 * `serverDistDir`), so each process runs exactly one feed poller per configuration.
 */
function coreFor(options, serverDistDir) {
  const key = JSON.stringify(Object.keys(options).sort().map((k) => [k, options[k]]))
  let core = cores.get(key)
  if (core === undefined) {
    try {
      core = new binding.NativeCache(options)
    } catch (err) {
      throw fromNative(err)
    }
    if (options[PURGE_HOOK] !== undefined) usePurgeHook(core, options[PURGE_HOOK])
    cores.set(key, core)
    flushOnSigterm()
  }
  if (serverDistDir !== undefined && !adopted.has(core)) {
    const id = buildIdFromDist(serverDistDir)
    if (id !== undefined) {
      core.adoptBuildId(id)
      adopted.add(core)
      // Registers the build for `fleetcache prune` (first writer wins; best effort).
      core.registerBuild().catch((err) => warn('could not register the build', err && err.message))
    }
  }
  return core
}
const adopted = new WeakSet()

/** How long the SIGTERM hook may block to deliver revalidations not landed yet (README, "Faults"). */
const SHUTDOWN_FLUSH_MS = 5_000
let sigtermHooked = false

/**
 * On SIGTERM, delivers every core's outbox (revalidations and feed events DynamoDB has not taken
 * yet) before the process goes, for at most SHUTDOWN_FLUSH_MS. Synchronous: `next start` exits
 * from its own SIGTERM handler once its server has closed, and nothing async of ours would run
 * after that. When no one else listens, the signal is raised again so the process still ends.
 */
function flushOnSigterm() {
  if (sigtermHooked) return
  sigtermHooked = true
  process.once('SIGTERM', () => {
    for (const core of cores.values()) {
      try {
        if (core.stats().outboxDepth > 0) core.flushBlocking(SHUTDOWN_FLUSH_MS)
      } catch (err) {
        warn('shutdown flush failed', err && err.message)
      }
    }
    if (process.listenerCount('SIGTERM') === 0) process.kill(process.pid, 'SIGTERM')
  })
}

// ---- Next values <-> native shapes ---------------------------------------------------------

/**
 * The Next values of recent hits, by key, each tagged with the generation of the native copy it
 * was built from. `getSync` is told the generation held here; a hit of that generation comes back
 * as its `lastModified` alone (one double across the boundary: no object, no strings, no copy of
 * the bytes) and is served from here, so Next gets the same value objects again, as from its own
 * memory cache or a module-level Map handler (Next does not write to a value it got from a
 * cache; README, "Hits"). A new generation (the entry was rewritten or reloaded) replaces the
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

/** Next's `cacheControl` (a fresh object per hit: Next may keep it). */
function cacheControlOf(revalidate, expire) {
  return expire === undefined ? { revalidate } : { revalidate, expire }
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
      input.headers = json(data.headers)
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
      input.headers = json(data.headers)
      break
    case 'PAGES':
      input.html = data.html
      input.pageData = json(data.pageData)
      input.headers = json(data.headers)
      input.status = data.status
      break
    case 'REDIRECT':
      input.props = json(data.props)
      break
    case 'FETCH': {
      const d = data.data || {}
      input.headers = json(d.headers)
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

// ---- the handler class ---------------------------------------------------------------------

/** Through the core's logger: one line per kind of event at most every 10 s, on stderr. */
function warn(what, detail) {
  binding.warn(what, String(detail))
}

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

/** Whether `FLEETCACHE_LOG=debug` is in force (read once: debug lines cost nothing otherwise). */
const debugOn = binding.debugEnabled()

/**
 * Returns a cache handler class for Next's `cacheHandler`, configured by `options` (environment
 * variables fill what is not given). Invalid options throw at once, naming the option.
 */
function createCacheHandler(options) {
  // During `next build` the core keeps entries in the process unless `writeDuringBuild` says
  // otherwise (README, "The build phase"): a build stage needs no AWS configuration.
  const base = checkedOptions(options)
  // Fail fast on configuration errors, at require time rather than on the first request.
  servedCores.add(coreFor(base, undefined))

  // Next makes a handler per request: once the core has its build, it is not looked up again.
  let adoptedCore
  class FleetCacheHandler {
    constructor(ctx) {
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
        const told = kind === 'FETCH' || nextLifetimes === null ? asIs : (out) => withLifetime(nextKey, out)
        const hit = this.core.getSync(key, kind, tags, softTags, revalidate, cache.gen(key))
        if (typeof hit === 'number') {
          const out = cache.serve(key, hit)
          if (out !== undefined) return Promise.resolve(told(out))
        } else if (hit !== undefined) {
          return Promise.resolve(told(toNext(hit, key, cache)))
        }
        return this.core.getAsync(key, kind, tags, softTags, revalidate).then((h) => told(toNext(h, key, cache)), (err) => {
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

// ---- revalidations shared by both interfaces ------------------------------------------------

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

// ---- the 'use cache' handler (Next 16 `cacheHandlers`) ------------------------------------------

/** `'use cache'` results whose `set` is still running, by core and key (a `get` waits for them). */
const pendingUseCacheSets = new Map()

/** A stream over `bytes`, new for each `get` (Next reads each one once). */
function streamOf(bytes) {
  return new ReadableStream({
    start(controller) {
      if (bytes.length > 0) controller.enqueue(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
      controller.close()
    },
  })
}

/** A native hit → Next's `CacheEntry`; a tag revalidated with a profile gives `revalidate: -1`. */
function toUseCacheEntry(h) {
  if (h === null || h === undefined || h.kind !== 'USE_CACHE') return undefined
  return {
    value: streamOf(h.buf),
    tags: h.tags || [],
    stale: h.stale,
    timestamp: h.timestamp,
    expire: h.expire,
    revalidate: h.tagStale ? -1 : h.revalidate,
  }
}

/** Reads a `'use cache'` value stream to its end, into one Buffer. */
async function drain(stream) {
  const chunks = []
  let size = 0
  const reader = stream.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      const chunk = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
      chunks.push(chunk)
      size += chunk.length
    }
  } finally {
    reader.releaseLock()
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)
}

/**
 * Returns the handler object for Next 16's `cacheHandlers.default` and `.remote` (`'use cache'`,
 * `'use cache: remote'`), configured like `createCacheHandler` and sharing its native core: the
 * memory tier, the bucket (`<prefix>/use-cache/<buildId>/`), tag states and the change feed.
 */
function createUseCacheHandler(options) {
  // One core for these options, for the life of the process (at require time: a bad option
  // fails the server at start).
  const core = coreFor(checkedOptions(options), undefined)
  servedCores.add(core)
  let pending = pendingUseCacheSets.get(core)
  if (pending === undefined) {
    pending = new Map()
    pendingUseCacheSets.set(core, pending)
  }
  return {
    /** The entry, or `undefined`; never rejects (a rejection would fail the render). */
    async get(cacheKey, softTags) {
      try {
        if (typeof cacheKey !== 'string') {
          core.noteInvalid("'use cache' get with a bad key, serving a miss", `cacheKey must be a string, got ${describe(cacheKey)}`)
          return undefined
        }
        cacheKey = lossless(cacheKey)
        const setting = pending.get(cacheKey)
        if (setting !== undefined) await setting.then(undefined, () => {}) // its failure is set's to log
        const soft = stringArray(softTags).map(lossless)
        const hit = core.getSync(cacheKey, 'USE_CACHE', undefined, soft, undefined, undefined)
        if (hit !== undefined) return toUseCacheEntry(hit)
        return toUseCacheEntry(await core.getAsync(cacheKey, 'USE_CACHE', undefined, soft, undefined))
      } catch (err) {
        warn("'use cache' get failed, serving a miss", err && err.message)
        return undefined
      }
    },

    /** Awaits the entry, reads its stream once, stores the bytes; keeps neither afterwards. */
    async set(cacheKey, pendingEntry) {
      if (typeof cacheKey !== 'string') {
        const err = invalid(`'use cache' set: cacheKey must be a string, got ${describe(cacheKey)}`)
        core.noteInvalid("'use cache' set refused", err.message)
        throw err
      }
      cacheKey = lossless(cacheKey)
      const work = (async () => {
        const entry = await pendingEntry
        const bytes = await drain(entry.value)
        // `expire: 0` marks a dynamic result: Next's own handler does not store it either.
        if (!(entry.expire > 0)) return
        const r = await core.set(cacheKey, {
          kind: 'USE_CACHE',
          buf: bytes,
          hasCacheControl: true,
          revalidateSeconds: entry.revalidate,
          expire: entry.expire,
          timestamp: entry.timestamp,
          stale: entry.stale,
          tags: stringArray(entry.tags).map(lossless),
        })
        if (!r.ok && r.code === 'FLEETCACHE_INVALID_INPUT') warn("'use cache' set refused", r.message)
      })()
      pending.set(cacheKey, work)
      try {
        await work
      } catch (err) {
        warn("'use cache' set refused", err && err.message)
      } finally {
        if (pending.get(cacheKey) === work) pending.delete(cacheKey)
      }
    },

    /** Nothing to do: the change feed keeps this process's tag states current. */
    async refreshTags() {},

    /** `Infinity`: soft tags are judged by `get` itself, from the tag states in memory. */
    async getExpiration() {
      return Infinity
    },

    /** `updateTag`, `revalidateTag`, `revalidatePath`: the same revalidation as the ISR handler's. */
    async updateTags(tags, durations) {
      const [list, expire] = checkedRevalidation(core, tags, durations, 'updateTags')
      await revalidateOnce(core, list, expire)
    },
  }
}

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

// ---- metrics --------------------------------------------------------------------------------

/**
 * Cores that serve Next (made by `createCacheHandler` / `createUseCacheHandler`), in creation
 * order: what `metrics()` reports. The tools' own short-lived cores (seeding at start, doctor)
 * are not among them.
 */
const servedCores = new Set()

/** The cores to report: the one for `options`, or every serving core (labelled when several). */
function coresToReport(options) {
  if (options !== undefined) return [[[], coreFor(checkedOptions(options), undefined)]]
  const list = [...servedCores]
  if (list.length <= 1) return list.map((c) => [[], c])
  const prefixes = list.map((c) => c.prefix)
  const unique = new Set(prefixes).size === prefixes.length
  return list.map((c, i) => [unique ? ['prefix', c.prefix] : ['prefix', c.prefix, 'core', String(i)], c])
}

/** Every sample of the cores to report, with `prefix` added when there are several. */
function samples(options) {
  const out = []
  for (const [labels, core] of coresToReport(options)) {
    for (const s of core.metricSamples()) {
      s.labels.push(...labels)
      out.push(s)
    }
  }
  return out
}

function familyName(s) {
  return `fleetcache_${s.name}${s.kind === 'counter' ? '_total' : ''}`
}

function labelText(pairs, extra) {
  const all = extra === undefined ? pairs : [...pairs, ...extra]
  if (all.length === 0) return ''
  const parts = []
  for (let i = 0; i < all.length; i += 2) {
    const v = String(all[i + 1]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
    parts.push(`${all[i]}="${v}"`)
  }
  return `{${parts.join(',')}}`
}

function num(v) {
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  if (Number.isNaN(v)) return 'NaN'
  return String(v)
}

/**
 * The metrics of this process's fleetcache core(s) in the Prometheus text exposition format
 * (0.0.4): counters (`fleetcache_*_total`), gauges and histograms (`*_seconds`). Serve it from a
 * route (README, "Metrics"). With `options`, only that configuration's core; without, every
 * core the process created (labelled `prefix` when there are several).
 */
function metrics(options) {
  const families = new Map()
  for (const s of samples(options)) {
    const name = familyName(s)
    let f = families.get(name)
    if (f === undefined) {
      f = { help: s.help, kind: s.kind, samples: [] }
      families.set(name, f)
    }
    f.samples.push(s)
  }
  const lines = []
  for (const [name, f] of families) {
    lines.push(`# HELP ${name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`)
    lines.push(`# TYPE ${name} ${f.kind}`)
    for (const s of f.samples) {
      if (s.kind !== 'histogram') {
        lines.push(`${name}${labelText(s.labels)} ${num(s.value)}`)
        continue
      }
      for (let i = 0; i < s.bucketBounds.length; i++) {
        lines.push(`${name}_bucket${labelText(s.labels, ['le', num(s.bucketBounds[i])])} ${s.bucketCounts[i]}`)
      }
      lines.push(`${name}_sum${labelText(s.labels)} ${num(s.sum)}`)
      lines.push(`${name}_count${labelText(s.labels)} ${num(s.value)}`)
    }
  }
  return lines.join('\n') + '\n'
}

/** The `Content-Type` of `metrics()`'s text. */
const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/**
 * Reports fleetcache's metrics through OpenTelemetry, for apps that use `@opentelemetry/api`
 * (with an SDK MeterProvider registered): one observable instrument per family, read when the
 * SDK collects. `api` defaults to the app's own `@opentelemetry/api`; returns false (and does
 * nothing) when there is none. Histograms are reported as their `_sum` and `_count` counters
 * (asynchronous instruments cannot carry buckets); Prometheus text has the buckets.
 */
/** Metric families that exist only once a core has created its S3 and DynamoDB clients. */
const LATE_FAMILIES = [
  ['breaker_open', 'gauge', "1 while the backend's circuit breaker is open"],
  ['breaker_opened', 'counter', "times the backend's circuit breaker opened"],
  ['breaker_rejections', 'counter', 'calls failed fast by an open breaker'],
  ['backend_requests', 'counter', 'S3 and DynamoDB operations by outcome (ok, an error code, or abandoned at a deadline)'],
  ['backend_request_duration_seconds', 'histogram', 'latency of S3 and DynamoDB operations'],
  // With `cdn` on (a core's purger).
  ['cdn_batches', 'counter', 'CDN invalidation requests sent'],
  ['cdn_paths', 'counter', 'CDN invalidation paths by fate: asked for, sent, or not sent past the monthly ceiling'],
  ['cdn_widened_batches', 'counter', 'CDN purges widened to wildcards to stay within the monthly ceiling'],
  ['cdn_merged_wildcards', 'counter', "page wildcards merged into folder wildcards to fit CloudFront's in-progress limit"],
  ['cdn_refusals', 'counter', 'CDN purges refused (TooManyInvalidationsInProgress, throttling) and retried'],
  ['cdn_failed_batches', 'counter', 'CDN purges given up on (each one logged)'],
  ['cdn_cost_dollars', 'counter', 'estimated invalidation charges of the purges this instance sent'],
  ['cdn_pending_paths', 'gauge', 'paths waiting for the window or for room'],
  ['cdn_month_paths', 'gauge', 'invalidation paths the fleet sent this month, as this instance last read it'],
]

function registerOpenTelemetry(api, options) {
  if (api === undefined) {
    try {
      api = require(require.resolve('@opentelemetry/api', { paths: [process.cwd(), __dirname] }))
    } catch {
      return false
    }
  }
  const meter = api.metrics.getMeter('fleetcache', require('./package.json').version)
  // One reading per collection, shared by every instrument's callback (dropped on the next turn).
  let reading
  const current = () => {
    if (reading === undefined) {
      reading = samples(options)
      setImmediate(() => {
        reading = undefined
      })
    }
    return reading
  }
  const attrs = (labels) => {
    const o = {}
    for (let i = 0; i < labels.length; i += 2) o[labels[i]] = labels[i + 1]
    return o
  }
  // Families known now, and those that appear once the S3/DynamoDB clients exist.
  const families = new Map(samples(options).map((x) => [x.name, [x.kind, x.help]]))
  for (const [name, kind, help] of LATE_FAMILIES) if (!families.has(name)) families.set(name, [kind, help])
  for (const [name, [kind, help]] of families) {
    const parts = kind === 'histogram' ? [['.sum', 'sum'], ['.count', 'value']] : [['', 'value']]
    for (const [suffix, field] of parts) {
      const inst =
        kind === 'gauge'
          ? meter.createObservableGauge(`fleetcache.${name}${suffix}`, { description: help })
          : meter.createObservableCounter(`fleetcache.${name}${suffix}`, { description: help })
      inst.addCallback((result) => {
        for (const x of current()) if (x.name === name) result.observe(x[field], attrs(x.labels))
      })
    }
  }
  return true
}

module.exports = {
  createCacheHandler,
  createUseCacheHandler,
  pathsForTags,
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
