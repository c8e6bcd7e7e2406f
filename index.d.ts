// The hand-written face of fleetcache. The native binding's own types are in binding.d.ts.
import type { Options as NativeOptions, DoctorCheck, BuildEntry, Receipt, ReceiptInstance } from './binding'

export type { DoctorCheck, BuildEntry, Receipt, ReceiptInstance, CdnReceipt } from './binding'

/**
 * Where log lines go instead of stderr (`logger` option): console, pino, winston… Each method is
 * called with one string, `"<event>: <message>"`. `info`/`debug` fall back to `log` if absent.
 */
export interface Logger {
  error(message: string): unknown
  warn(message: string): unknown
  info?(message: string): unknown
  debug?(message: string): unknown
  log?(message: string): unknown
}

/** The handler's options (docs/configuration.md, "Options"); environment variables fill what is not given. */
export type Options = Omit<
  NativeOptions,
  | 'backend'
  | 'cdnDistributionId'
  | 'cdnEndpoint'
  | 'cdnWindowMs'
  | 'cdnCollapseAt'
  | 'cdnMaxPathsPerMonth'
  | 'cdnMaxDollarsPerMonth'
  | 'cdnRscVariants'
> & {
  /** `"aws"` (default): S3 + DynamoDB; `"memory"`: process-local stores, for tests. Env: `FLEETCACHE_BACKEND`. */
  backend?: 'aws' | 'memory'
  /** Routes fleetcache's log lines into the app's logger (one per process: the last given wins). */
  logger?: Logger
  /** Purging the CDN in front after revalidations (docs/cdn.md, "The CDN in front"). Off by default. */
  cdn?: CdnOptions
}

/** One planned CDN purge, as `cdn.purge` receives it. */
export interface PurgeBatch {
  /** URL paths, sorted; wildcards end in `*` (`/blog/*`, `/blog/a?_rsc=*`). */
  paths: string[]
  files: number
  wildcards: number
  /** Estimated CloudFront charge of this batch, in dollars. */
  cost: number
  /** The monthly ceiling turned files into wildcards. */
  widened: boolean
}

export interface CdnOptions {
  /** CloudFront: `CreateInvalidation` on this distribution. Env: `FLEETCACHE_CLOUDFRONT_DISTRIBUTION_ID`. */
  cloudfront?: {
    distributionId?: string
    /** API endpoint URL (local servers). Env: `AWS_ENDPOINT_URL_CLOUDFRONT`, `AWS_ENDPOINT_URL`. */
    endpoint?: string
  }
  /** Receives every planned purge instead (Cloudflare, Fastly…); a rejection retries it after a backoff. */
  purge?: (batch: PurgeBatch) => unknown | Promise<unknown>
  /** How long paths collect before a purge is sent, in ms. Default 300. */
  windowMs?: number
  /** Files under one folder that become one wildcard. Default 20. */
  collapseAt?: number
  /** Most paths the fleet sends a month (a wildcard counts one). Default: no ceiling. */
  maxPathsPerMonth?: number
  /** The same ceiling in dollars beyond the free 1,000 paths. */
  maxDollarsPerMonth?: number
  /** `"query"` (default): the CDN keys RSC requests by `_rsc`; `"headers"`: by Next's headers. */
  rscVariants?: 'query' | 'headers'
}

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
  /** Units dropped because they can never be valid (past a DynamoDB size limit; logged). A refusal such as access denied is retried instead. */
  outboxGiveUps: number
  feedPolls: number
  feedEvents: number
  feedEvictions: number
  feedErrors: number
  feedResets: number
  leasesWon: number
  leasesLost: number
  /** Calls refused for input of the wrong type or range (FLEETCACHE_INVALID_INPUT; for get, a miss). */
  invalidInputs: number
  /** Sets whose bytes equalled the stored entry's: no S3 body written, no CDN purge; only the freshness moved. */
  identicalSets: number
  memoryBytes: number
  memoryEntries: number
  memoryBudget: number
  evictions: number
  knownTags: number
  /** Revalidations, feed events and uploads not landed yet. */
  outboxDepth: number
  /** Bytes of the uploads waiting in the outbox. */
  queuedUploadBytes: number
  /** Seconds the oldest unit in the outbox has waited (0 when none waits). */
  outboxOldestSeconds: number
  /** Whether memory is being served (the feed is being read). */
  feedTrusted: boolean
  /** How far behind the feed's head this instance may be (seconds since it last held every event). */
  feedBehindSeconds: number
  /** Circuit breakers (AWS backend): while open, calls to that backend fail fast. */
  s3BreakerOpen: boolean
  dynamodbBreakerOpen: boolean
  /** Calls refused by an open breaker. */
  breakerRejections: number
  /** Requests sent to DynamoDB by this core. */
  dynamodbReads: number
  dynamodbWrites: number
  /** CDN purges this instance sent (0 with purging off; see `cdn`). */
  cdnBatches: number
  cdnPathsSent: number
  /** Purges widened to wildcards to stay within the monthly ceiling. */
  cdnWidenedBatches: number
  /** Paths not sent because the month's ceiling was reached (the CDN serves them until their s-maxage). */
  cdnOverBudgetPaths: number
  /** Purges refused by the CDN (TooManyInvalidationsInProgress, throttling) and retried after a backoff. */
  cdnRefusals: number
  /** Purges given up on (logged). */
  cdnFailedBatches: number
  /** Paths waiting for the window or for room among CloudFront's invalidations in progress. */
  cdnPendingPaths: number
  /** Paths the fleet sent this month, as this instance last read the shared count. */
  cdnPathsThisMonth: number
}

/** Next's `CacheHandlerValue`, as `get` returns it. */
export interface CacheHandlerValue {
  lastModified: number
  value: any | null
  /** As Next's `CacheControl`: `expire` is present, possibly undefined. */
  cacheControl?: { revalidate: number | false; expire: number | undefined }
}

/** What Next passes as `ctx` to `get`/`set` (the fields fleetcache reads; Next's own context types are assignable). */
export interface HandlerContext {
  kind?: string
  kindHint?: string
  fetchCache?: boolean
  tags?: string[]
  softTags?: string[]
  revalidate?: number | false
  cacheControl?: { revalidate: number | false; expire?: number }
  isRoutePPREnabled?: boolean
  isFallback?: boolean
}

/** The class Next's `cacheHandler` loads (assignable to Next's own `CacheHandler`; a type test pins it). */
export interface FleetCacheHandler {
  /** Never rejects: a miss, backend error, passed deadline or a key that is not a string resolves `null` (the latter counted in `invalidInputs`). */
  get(key: string, ctx?: HandlerContext): Promise<CacheHandlerValue | null>
  /** Rejects only with `FLEETCACHE_INVALID_INPUT` for a value of the wrong type or range; store failures are logged and counted. */
  set(key: string, data: unknown, ctx?: HandlerContext): Promise<void>
  /** `durations` undefined or `{expire: 0}` expires now; `{expire: N}` marks stale now, expired in N s (`Infinity` or past 4294967294 means forever). Honoured by this instance at once; waits at most `revalidateTimeoutMs` for DynamoDB, then leaves it queued (retried until it lands). Rejects with `FLEETCACHE_INVALID_INPUT` for tags that are not strings or an `expire` that is NaN or negative, and with `FLEETCACHE_BACKEND` only when it cannot be queued (the outbox is full) or it can never be valid (`FLEETCACHE_TOO_LARGE`, past a DynamoDB size limit). A refusal such as access denied is queued and retried until it lands. */
  revalidateTag(tags: string | string[], durations?: { expire?: number }): Promise<void>
  resetRequestCache(): void
}

export interface FleetCacheHandlerClass {
  new (ctx?: { serverDistDir?: string }): FleetCacheHandler
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

/**
 * Revalidates `tags` and the pages at `paths` (as `revalidatePath(path)`); `profile` `'max'` marks
 * them stale (regenerated in the background), `{ expire }` stale now and expired in `expire` s,
 * none expires them now. With `wait: true`, resolves to the receipt once every live instance (a
 * heartbeat) has applied it, or at `timeoutMs` (default 10,000) with the ones that have not in
 * `missing`, and its CDN purge in `cdn` when this instance purges one; `onApplied` hears of each
 * instance as it applies it. `options`: the cache handler's (default: the first handler this
 * process made).
 */
export function revalidate(
  request: { tags?: string | string[]; paths?: string | string[]; profile?: 'max' | { expire?: number }; wait?: false; timeoutMs?: number },
  options?: Options,
): Promise<void>
export function revalidate(
  request: { tags?: string | string[]; paths?: string | string[]; profile?: 'max' | { expire?: number }; wait: true; timeoutMs?: number; onApplied?: (instance: ReceiptInstance) => void },
  options?: Options,
): Promise<Receipt>

/** The page path and `/_next/data/<buildId>/<path>.json` of a pages-router cache key. */
export function pagesRouterPaths(key: string, buildId: string): string[]

/** The URL path of a response-cache key (`/index` → `/`), or null for fetch/image keys. */
export function pathOfKey(key: string): string | null

/** Counters and memory use of the core for `options`. */
export function stats(options?: Options): Stats

/**
 * The metrics of this process's core(s) in the Prometheus text format (docs/operating.md, "Metrics"):
 * `fleetcache_*_total` counters, gauges and `*_seconds` histograms. With `options`, that
 * configuration's core only; without, every core of the process (labelled `prefix` if several).
 */
export function metrics(options?: Options): string

/** `text/plain; version=0.0.4; charset=utf-8`: the `Content-Type` to serve `metrics()` with. */
export const METRICS_CONTENT_TYPE: string

/**
 * Reports the same metrics through OpenTelemetry (`@opentelemetry/api`'s global MeterProvider,
 * or the `api` given) as observable instruments named `fleetcache.<name>`; histograms as
 * `.sum`/`.count`. Returns false when `@opentelemetry/api` is not installed.
 */
export function registerOpenTelemetry(api?: unknown, options?: Options): boolean

export class FleetCacheError extends Error {
  code: 'FLEETCACHE_CONFIG' | 'FLEETCACHE_NO_BINARY' | 'FLEETCACHE_BACKEND' | 'FLEETCACHE_THROTTLED' | 'FLEETCACHE_TIMEOUT' | 'FLEETCACHE_INVALID_INPUT' | 'FLEETCACHE_TOO_LARGE' | 'FLEETCACHE_CORRUPT' | 'FLEETCACHE_CONFLICT' | 'FLEETCACHE_INTERNAL' | string
}
