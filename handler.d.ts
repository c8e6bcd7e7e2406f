import type { FleetCacheHandlerClass } from './index'
/** A cache handler configured from FLEETCACHE_* and AWS_* environment variables. */
declare const Handler: FleetCacheHandlerClass
export = Handler
