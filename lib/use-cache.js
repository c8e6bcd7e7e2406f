'use strict'
// The `'use cache'` handler (Next 16 `cacheHandlers`): results as streams, their sets awaited by
// the gets that follow, revalidations shared with the cache handler.

const { checkedOptions } = require('./options.js')
const { warn } = require('./log.js')
const { lossless, invalid, checkedRevalidation, describe } = require('./input.js')
const { coreFor, servedCores } = require('./cores.js')
const { stringArray } = require('./next-value.js')
const { revalidateOnce } = require('./revalidate.js')

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
        return toUseCacheEntry(await core.get(cacheKey, 'USE_CACHE', undefined, soft, undefined, undefined))
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
        if (entry === null || typeof entry !== 'object' || entry.value === null || typeof entry.value !== 'object' || typeof entry.value.getReader !== 'function') {
          const err = invalid(`'use cache' set(${JSON.stringify(cacheKey)}): the entry must be an object whose \`value\` is a ReadableStream, got ${entry !== null && typeof entry === 'object' ? `value ${describe(entry.value)}` : describe(entry)}`)
          core.noteInvalid("'use cache' set refused", err.message)
          throw err
        }
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

module.exports = { createUseCacheHandler }
