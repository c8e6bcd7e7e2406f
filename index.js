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

/** Checks option names and types in the core (the one option list) and returns the options object. */
function checkedOptions(options) {
  try {
    binding.checkOptions(options)
  } catch (err) {
    throw fromNative(err)
  }
  return options === undefined || options === null ? {} : options
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
 * Decoded html strings of recent hits, by key, tagged with the native copy's generation. A hit
 * of the same generation then skips re-creating a large V8 string; a new generation (the entry
 * was rewritten or reloaded) replaces it. Bounded in bytes (a quarter of `memoryBytes`, at most
 * 64 MiB), least recently used out first.
 */
class HtmlCache {
  constructor(budget) {
    this.budget = budget
    this.bytes = 0
    this.map = new Map()
  }
  get(key) {
    return this.map.get(key)
  }
  touch(key, e) {
    this.map.delete(key)
    this.map.set(key, e)
  }
  set(key, gen, html) {
    const size = html.length * 2 + 64
    if (size > this.budget) return
    const old = this.map.get(key)
    if (old !== undefined) {
      this.bytes -= old.size
      this.map.delete(key)
    }
    this.map.set(key, { gen, html, size })
    this.bytes += size
    for (const [k, v] of this.map) {
      if (this.bytes <= this.budget) break
      this.map.delete(k)
      this.bytes -= v.size
    }
  }
}

const htmlCaches = new WeakMap()
function htmlCacheOf(core) {
  let c = htmlCaches.get(core)
  if (c === undefined) {
    c = new HtmlCache(Math.min(64 * 1024 * 1024, Math.floor(core.stats().memoryBudget / 4)))
    htmlCaches.set(core, c)
  }
  return c
}

/** The html of a hit: the cached string when the native side left it out, else decoded (and cached). */
function htmlOf(h, key, cache) {
  if (cache !== undefined) {
    const known = cache.get(key)
    if (known !== undefined && h.gen === known.gen) {
      if (h.htmlLen === 0) {
        cache.touch(key, known)
        return known.html
      }
    }
  }
  const html = h.buf.toString('utf8', 0, h.htmlLen)
  if (cache !== undefined && h.gen !== undefined) cache.set(key, h.gen, html)
  return html
}

function parseJson(s) {
  return s === undefined ? undefined : JSON.parse(s)
}

/** A native hit → Next's `CacheHandlerValue`, with exact JS types (Buffers, a Map, undefined). */
function toNext(h, key, cache) {
  if (h === null || h === undefined) return null
  const out = { lastModified: h.lastModified, value: null }
  if (h.revalidate !== undefined) {
    out.cacheControl = h.expire === undefined ? { revalidate: h.revalidate } : { revalidate: h.revalidate, expire: h.expire }
  }
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
        html: htmlOf(h, key, cache),
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
      out.value = { kind: 'PAGES', html: htmlOf(h, key, cache), pageData: parseJson(h.pageData), headers: parseJson(h.headers), status: h.status }
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
  return [...tags]
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
  const c = ctx || {}
  const kind = c.kind || (c.kindHint === 'fetch' ? 'FETCH' : undefined)
  if (kind === 'FETCH') {
    return [kind, Array.isArray(c.tags) ? c.tags : undefined, Array.isArray(c.softTags) ? c.softTags : undefined, typeof c.revalidate === 'number' ? c.revalidate : undefined]
  }
  return [kind, undefined, undefined, undefined]
}

/**
 * Returns a cache handler class for Next's `cacheHandler`, configured by `options` (environment
 * variables fill what is not given). Invalid options throw at once, naming the option.
 */
function createCacheHandler(options) {
  // During `next build` the core keeps entries in the process unless `writeDuringBuild` says
  // otherwise (README, "The build phase"): a build stage needs no AWS configuration.
  const base = checkedOptions(options)
  // Fail fast on configuration errors, at require time rather than on the first request.
  coreFor(base, undefined)

  class FleetCacheHandler {
    constructor(ctx) {
      this.core = coreFor(base, ctx && ctx.serverDistDir)
      this.htmlCache = htmlCacheOf(this.core)
    }

    get(key, ctx) {
      try {
        if (typeof key !== 'string') return Promise.resolve(null)
        const [kind, tags, softTags, revalidate] = getArgs(ctx)
        const cache = this.htmlCache
        const known = cache.get(key)
        const hit = this.core.getSync(key, kind, tags, softTags, revalidate, known === undefined ? undefined : known.gen)
        if (hit !== undefined) return Promise.resolve(toNext(hit, key, cache))
        return this.core.getAsync(key, kind, tags, softTags, revalidate).then((h) => toNext(h, key, cache), (err) => {
          warn('get failed, serving a miss', err && err.message)
          return null
        })
      } catch (err) {
        warn('get failed, serving a miss', err && err.message)
        return Promise.resolve(null)
      }
    }

    async set(key, data, ctx) {
      try {
        if (typeof key !== 'string') throw new FleetCacheError('FLEETCACHE_INVALID_INPUT', `key must be a string, got ${typeof key}`)
        const r = await this.core.set(key, toInput(data, ctx || {}))
        if (!r.ok && r.code === 'FLEETCACHE_INVALID_INPUT') warn('set refused', r.message)
      } catch (err) {
        warn('set refused', err && err.message)
      }
    }

    async revalidateTag(tags, durations) {
      await revalidateOnce(this.core, typeof tags === 'string' ? [tags] : stringArray(tags), durations)
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
function revalidateOnce(core, tags, durations) {
  if (tags.length === 0) return Promise.resolve()
  const expire = durations && typeof durations.expire === 'number' ? durations.expire : undefined
  const key = JSON.stringify([[...tags].sort(), expire === undefined ? null : expire])
  let byCore = inFlightRevalidations.get(core)
  if (byCore === undefined) {
    byCore = new Map()
    inFlightRevalidations.set(core, byCore)
  }
  let p = byCore.get(key)
  if (p === undefined) {
    p = core.revalidateTags(tags, expire).then((r) => {
      if (!r.ok) throw new FleetCacheError(r.code, `revalidateTag(${JSON.stringify(tags)}) did not reach the tag store: ${r.message}`)
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
  let pending = pendingUseCacheSets.get(core)
  if (pending === undefined) {
    pending = new Map()
    pendingUseCacheSets.set(core, pending)
  }
  return {
    /** The entry, or `undefined`; never rejects (a rejection would fail the render). */
    async get(cacheKey, softTags) {
      try {
        if (typeof cacheKey !== 'string') return undefined
        const setting = pending.get(cacheKey)
        if (setting !== undefined) await setting.then(undefined, () => {}) // its failure is set's to log
        const soft = stringArray(softTags)
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
      if (typeof cacheKey !== 'string') return
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
          tags: stringArray(entry.tags),
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
      await revalidateOnce(core, stringArray(tags), durations)
    },
  }
}

/** URL paths of cached pages and route handlers that carry any of `tags` (for CDN purges). */
async function pathsForTags(tags, options) {
  const list = typeof tags === 'string' ? [tags] : stringArray(tags)
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
  pagesRouterPaths,
  pathOfKey: (key) => binding.pathOfKey(String(key)) ?? null,
  stats,
  FleetCacheError,
  // for tests and tools
  _coreFor: (options, serverDistDir) => coreFor(checkedOptions(options), serverDistDir),
  _toInput: toInput,
  _checkedOptions: checkedOptions,
  _fromNative: fromNative,
}
