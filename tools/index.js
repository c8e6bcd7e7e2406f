'use strict'
// `fleetcache/tools`: the deploy-time tools behind the `fleetcache` command. They live in tools/,
// which the handler (`../index.js`) never requires: the module graph Next traces for
// `cacheHandler` cannot reach build-output reading code (file tracing would otherwise pull in the
// whole project).

const fc = require('../index.js')
const seedLib = require('./seed.js')

/**
 * Puts the prerendered output of `distDir` (default `.next`) into the shared store; see seed.js.
 * Resolves to `{ buildId, total, written, existing, failed, skipped }`.
 */
async function seed(distDir, options, tool = {}) {
  // tool: { concurrency, progress, dryRun }
  const base = fc._checkedOptions(options)
  return seedLib.seed(distDir || '.next', base, {
    ...tool,
    toInput: fc._toInput,
    coreFor: (o) => fc._coreFor(o),
  })
}

/**
 * Deletes the entries of every registered build but the `keep` that ran last (a rolled-back
 * build counts as recent), in batches, then their markers. `dryRun` lists what would go;
 * `progress: false` silences the progress output. Resolves to `{ kept: [...], pruned: [...] }`.
 */
async function prune({ keep, dryRun = false, progress } = {}, options) {
  if (!Number.isInteger(keep) || keep < 1) {
    throw new fc.FleetCacheError('FLEETCACHE_CONFIG', `keep must be an integer ≥ 1, got ${JSON.stringify(keep)}`)
  }
  const core = fc._coreFor({ ...options, feedIntervalMs: 0 })
  try {
    const builds = await core.listBuilds()
    // A build an instance still serves (a live heartbeat) is never removed, however old.
    const serving = new Set((await core.fleetStatus()).instances.map((i) => i.buildId))
    const oldest = builds.slice(0, Math.max(0, builds.length - keep))
    const doomed = oldest.filter((b) => !serving.has(b.buildId))
    const report = { kept: builds.filter((b) => !doomed.includes(b)), pruned: [], serving: oldest.filter((b) => serving.has(b.buildId)).map((b) => b.buildId) }
    for (const b of doomed) {
      const keys = await core.buildObjectKeys(b.buildId)
      const tick = progress === false ? () => {} : seedLib.progressReporter(keys.length, process.stderr, `prune ${b.buildId}`, 'deleted')
      tick(0, 0)
      if (!dryRun) {
        for (let i = 0; i < keys.length; i += 1000) {
          const chunk = keys.slice(i, i + 1000)
          await core.deleteObjects(chunk)
          tick(i + chunk.length, i + chunk.length)
        }
        await core.deleteObjects(core.buildMarkerKeys(b.buildId))
      }
      report.pruned.push({ buildId: b.buildId, createdAt: b.createdAt, lastActiveAt: b.lastActiveAt, objects: keys.length })
    }
    return report
  } catch (err) {
    throw err instanceof fc.FleetCacheError ? err : fc._fromNative(err)
  }
}

/**
 * The live fleet: `{ instances: [heartbeat…], head, now, builds: [{ buildId, instances }],
 * outboxDepth }`, instances by build then id (`fleetcache status`).
 */
async function status(options) {
  try {
    const s = await fc._coreFor({ ...options, feedIntervalMs: 0 }).fleetStatus()
    s.instances.sort((a, b) => a.buildId.localeCompare(b.buildId) || a.id.localeCompare(b.id))
    const builds = new Map()
    for (const i of s.instances) builds.set(i.buildId, (builds.get(i.buildId) || 0) + 1)
    return { ...s, builds: [...builds].map(([buildId, instances]) => ({ buildId, instances })), outboxDepth: s.instances.reduce((n, i) => n + i.outboxDepth, 0) }
  } catch (err) {
    throw err instanceof fc.FleetCacheError ? err : fc._fromNative(err)
  }
}

/**
 * Revalidates `tags` and `paths` across the fleet from outside it (`fleetcache revalidate`): a core
 * that reads no page and announces no heartbeat. With `wait`, resolves to the receipt;
 * `onApplied(instance)` hears of each instance as it applies it.
 */
async function revalidate({ tags = [], paths = [], max = false, wait = false, timeoutMs = 10_000, onApplied } = {}, options = {}) {
  return fc.revalidate({ tags, paths, profile: max ? 'max' : undefined, wait, timeoutMs, onApplied }, { ...options, heartbeatMs: 0 })
}

/** Checks credentials, bucket, table and permissions: `[{ name, ok, warning, detail, fix? }]`. */
async function doctor(options) {
  return fc._coreFor({ ...options, feedIntervalMs: 0 }).doctor()
}

/**
 * What the store holds for a URL path (`/isr`: the page and route entries of `buildId`) or a
 * cache key (any class), decoded. `buildId` defaults to the options' / `FLEETCACHE_BUILD_ID`,
 * else the build registered last.
 */
async function inspect(what, options = {}, { buildId } = {}) {
  if (typeof what !== 'string' || what.length === 0) {
    throw new fc.FleetCacheError('FLEETCACHE_INVALID_INPUT', `inspect needs a URL path or cache key, got ${JSON.stringify(what)}`)
  }
  try {
    let build = buildId || options.buildId || process.env.FLEETCACHE_BUILD_ID
    if (!build) {
      const builds = await fc._coreFor({ ...options, feedIntervalMs: 0 }).listBuilds()
      build = builds.length > 0 ? builds.reduce((a, b) => (b.lastActiveAt > a.lastActiveAt ? b : a)).buildId : undefined
    }
    const core = fc._coreFor({ ...options, ...(build ? { buildId: build } : {}), feedIntervalMs: 0 })
    return { buildId: core.buildId, entries: await core.inspect(what) }
  } catch (err) {
    throw err instanceof fc.FleetCacheError ? err : fc._fromNative(err)
  }
}

/**
 * Plans the CDN purge of `tags`' pages and `paths` by the purger's rules (docs/cdn.md, "The CDN in
 * front") and sends it to CloudFront unless `dryRun`. Resolves to
 * `{ paths, batches: [{ paths, files, wildcards, cost, widened, invalidationId, error }], notSent, cost, sent }`.
 */
async function purge({ tags = [], paths = [], dryRun = false, distributionId } = {}, options = {}) {
  const cdn = { ...(options.cdn || {}) }
  if (distributionId) cdn.cloudfront = { ...(cdn.cloudfront || {}), distributionId }
  try {
    const core = fc._coreFor({ ...options, cdn, feedIntervalMs: 0 })
    return await core.purgeNow(tags, paths, dryRun)
  } catch (err) {
    throw err instanceof fc.FleetCacheError ? err : fc._fromNative(err)
  }
}

module.exports = { seed, prune, doctor, inspect, purge, status, revalidate, readBuildId: seedLib.readBuildId }
