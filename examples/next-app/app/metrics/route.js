// GET /metrics — this instance's fleetcache metrics in the Prometheus text format (README,
// "Metrics"): gets by where they were answered from, S3/DynamoDB requests with latency
// histograms, breaker states, the change feed's lag, memory use. Point a scrape job at every
// instance; keep it off the public internet (a separate port, or your own auth).
//
// In an app that installed fleetcache from the registry this is
//   import { metrics, METRICS_CONTENT_TYPE } from 'fleetcache'
// (with `serverExternalPackages: ['fleetcache']`). This example links the repository
// (`file:../..`), which Next would bundle, so it requires fleetcache at run time through Node's
// own `require`: the very module, and native core, Next loaded as `cacheHandler`.
export const dynamic = 'force-dynamic'
export function GET() {
  const { createRequire } = process.getBuiltinModule('node:module')
  const { metrics, METRICS_CONTENT_TYPE } = createRequire(`${process.cwd()}/package.json`)('fleetcache')
  return new Response(metrics(), { headers: { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store' } })
}
