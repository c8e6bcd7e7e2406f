import type { Options, FleetCacheHandlerClass } from '../index'
import type { SeedReport } from './index'

/**
 * `fleetcache/instrumentation`: call from the app's `instrumentation.js` `register()`. Resolves
 * at once; one instance of the fleet seeds this build's output in the background (`done`), the
 * others do nothing. See docs/deployment.md, "Deploying without a cold cache".
 */
export function register(args?: {
  /** The app's distDir. Default `FLEETCACHE_DIST_DIR`, else `.next`. */
  distDir?: string
  /** The cache handler's options (env vars fill the rest). */
  options?: Options
  /** How long one instance's claim on the job lasts before another may take over. Default 10 min. */
  claimMs?: number
  log?: (msg: string) => void
}): Promise<{ done: Promise<SeedReport | null> }>

/**
 * Makes fleetcache this process's cache handler through the hook Next reads when next.config.js
 * sets no `cacheHandler` (Next then skips the per-request `import()` of the handler's module).
 * Call it from `register()` in `instrumentation.js` and leave `cacheHandler` out of
 * next.config.js. Returns the handler class, or `null` outside the Node.js runtime or when the
 * installed `next` does not read the hook (logged). See docs/configuration.md, "Hits without the
 * per-request import".
 */
export function registerCacheHandler(
  options?: Options,
  args?: { log?: (msg: string) => void },
): FleetCacheHandlerClass | null
