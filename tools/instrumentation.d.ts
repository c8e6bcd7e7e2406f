import type { Options } from '../index'
import type { SeedReport } from './index'

/**
 * `fleetcache/instrumentation`: call from the app's `instrumentation.js` `register()`. Resolves
 * at once; one instance of the fleet seeds this build's output in the background (`done`), the
 * others do nothing. See the README, "Deploying without a cold cache".
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
