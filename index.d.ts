// The hand-written face of fleetcache. The native binding's own types are in binding.d.ts.
import type { Options as NativeOptions, DoctorCheck, BuildEntry } from './binding'

export type { DoctorCheck, BuildEntry } from './binding'

/** The handler's options (README, "Options"); environment variables fill what is not given. */
export type Options = NativeOptions

/**
 * What `stats()` reports: counters since the core was created, then gauges. Their one
 * definition is the core's (`src/stats.rs`, `Core::stats_snapshot`); a test checks this list
 * against it.
 */
export interface Stats {
  memoryHits: number
  backendHits: number
  misses: number
  stale: number
  expired: number
  getErrors: number
  getTimeouts: number
  corrupt: number
  servedFromMemoryOnError: number
  sets: number
  setErrors: number
  /** S3 writes past setTimeoutMs (the value stayed in memory). */
  setTimeouts: number
  /** Sets whose S3 write failed, queued for a later upload (the value stayed in memory). */
  uploadsQueued: number
  /** Queued uploads that reached S3 (their feed event follows). */
  uploadsLanded: number
  /** Queued uploads dropped because S3 meanwhile held a render that started no earlier. */
  uploadsSuperseded: number
  /** Failed sets not queued: queued uploads were at their byte limit (memoryBytes / 4). */
  uploadsDropped: number
  tooLarge: number
  indexErrors: number
  revalidations: number
  revalidateErrors: number
  /** Revalidations (and set feed events) that did not land within revalidateTimeoutMs and were left to the retry task. */
  revalidationsQueued: number
  outboxRetries: number
  /** Revalidations refused because the outbox was full (each one rejected its caller). */
  outboxOverflows: number
  /** Units dropped because the store refused them outright (logged). */
  outboxGiveUps: number
  feedPolls: number
  feedEvents: number
  feedEvictions: number
  feedErrors: number
  feedResets: number
  leasesWon: number
  leasesLost: number
  memoryBytes: number
  memoryEntries: number
  memoryBudget: number
  evictions: number
  knownTags: number
  /** Revalidations, feed events and uploads not landed yet. */
  outboxDepth: number
  /** Bytes of the uploads waiting in the outbox. */
  queuedUploadBytes: number
  /** Whether memory is being served (the feed is being read). */
  feedTrusted: boolean
  /** Circuit breakers (AWS backend): while open, calls to that backend fail fast. */
  s3BreakerOpen: boolean
  dynamodbBreakerOpen: boolean
  /** Calls refused by an open breaker. */
  breakerRejections: number
  /** Requests sent to DynamoDB by this core. */
  dynamodbReads: number
  dynamodbWrites: number
}

/** Next's `CacheHandlerValue`, as `get` returns it. */
export interface CacheHandlerValue {
  lastModified: number
  value: any | null
  cacheControl?: { revalidate: number | false; expire?: number }
}

/** The class Next's `cacheHandler` loads. */
export interface FleetCacheHandler {
  /** Never rejects: a miss, backend error or passed deadline resolves `null`. */
  get(key: string, ctx?: Record<string, unknown>): Promise<CacheHandlerValue | null>
  /** Never rejects: failures are logged and counted. */
  set(key: string, data: unknown, ctx?: Record<string, unknown>): Promise<void>
  /** `durations` undefined or `{expire: 0}` expires now; `{expire: N}` marks stale now, expired in N s. Honoured by this instance at once; waits at most `revalidateTimeoutMs` for DynamoDB, then leaves it queued (retried until it lands). Rejects with `FLEETCACHE_BACKEND` only when it cannot be queued (the outbox is full) or DynamoDB refuses it outright. */
  revalidateTag(tags: string | string[], durations?: { expire?: number }): Promise<void>
  resetRequestCache(): void
}

export interface FleetCacheHandlerClass {
  new (ctx?: Record<string, unknown>): FleetCacheHandler
}

/** A handler class configured by `options`, env vars filling the rest. Throws `FLEETCACHE_CONFIG` naming a bad option. */
export function createCacheHandler(options?: Options): FleetCacheHandlerClass

/** Next 16's `CacheEntry` (`'use cache'` results). */
export interface UseCacheEntry {
  /** A new stream over the stored bytes on every `get`. */
  value: ReadableStream<Uint8Array>
  /** The entry's own tags (soft tags excluded). */
  tags: string[]
  /** Seconds, for the client. */
  stale: number
  /** When the entry was created, ms since the epoch. */
  timestamp: number
  /** Seconds. */
  expire: number
  /** Seconds; `-1` when one of its tags (or soft tags) was revalidated with a profile: Next serves it once more and regenerates it. */
  revalidate: number
}

/** The handler object Next 16's `cacheHandlers` (`default`, `remote`) loads. */
export interface UseCacheHandler {
  /** `undefined` on a miss, an expired tag or soft tag, or any backend trouble; never rejects. Waits for a `set` of the same key still running. */
  get(cacheKey: string, softTags: string[]): Promise<UseCacheEntry | undefined>
  /** Awaits the entry and reads its stream once; keeps neither. `expire: 0` (dynamic) results are not stored. Never rejects. */
  set(cacheKey: string, pendingEntry: Promise<UseCacheEntry>): Promise<void>
  /** No network: the change feed keeps tag states current. */
  refreshTags(): Promise<void>
  /** `Infinity`: soft tags are judged by `get`. No network. */
  getExpiration(tags: string[]): Promise<number>
  /** The same revalidation as `FleetCacheHandler.revalidateTag` (one DynamoDB write when Next calls both). */
  updateTags(tags: string[], durations?: { expire?: number }): Promise<void>
}

/** The `'use cache'` handler object configured by `options`, env vars filling the rest; shares the core of `createCacheHandler(options)`. */
export function createUseCacheHandler(options?: Options): UseCacheHandler

/** URL paths of cached app-router pages and route handlers carrying any of `tags`. */
export function pathsForTags(tags: string | string[], options?: Options): Promise<string[]>

/** The page path and `/_next/data/<buildId>/<path>.json` of a pages-router cache key. */
export function pagesRouterPaths(key: string, buildId: string): string[]

/** The URL path of a response-cache key (`/index` → `/`), or null for fetch/image keys. */
export function pathOfKey(key: string): string | null

/** Counters and memory use of the core for `options`. */
export function stats(options?: Options): Stats

export class FleetCacheError extends Error {
  code: 'FLEETCACHE_CONFIG' | 'FLEETCACHE_NO_BINARY' | 'FLEETCACHE_BACKEND' | 'FLEETCACHE_THROTTLED' | 'FLEETCACHE_TIMEOUT' | 'FLEETCACHE_INVALID_INPUT' | 'FLEETCACHE_TOO_LARGE' | 'FLEETCACHE_CORRUPT' | 'FLEETCACHE_CONFLICT' | 'FLEETCACHE_INTERNAL' | string
}
