import type { UseCacheHandler } from './index'
/** The `'use cache'` handler (Next 16 `cacheHandlers`), configured from FLEETCACHE_* and AWS_* environment variables. */
declare const handler: UseCacheHandler
export = handler
