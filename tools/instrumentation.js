'use strict'
// `fleetcache/instrumentation`: run-time seeding, for platforms without a deploy step: call
// `register()` from the app's `instrumentation.js`. On each instance's start it checks whether this build was seeded; if
// not, one instance of the fleet claims the job (a lease in DynamoDB) and seeds in the
// background, while every instance — the seeder included — starts serving at once. If the
// seeder dies, its claim lapses (`claimMs`, default 10 min) and the next instance to start
// takes over; a seed that already ran writes nothing.
//
//   // instrumentation.js
//   export async function register() {
//     if (process.env.NEXT_RUNTIME === 'nodejs') {
//       await (await import('fleetcache/instrumentation')).register({ distDir: '.next' })
//     }
//   }

const fs = require('node:fs')
const path = require('node:path')

// The rest of fleetcache (and its native addon) is loaded by package name at run time, from the
// app's directory, out of sight of bundlers: an app's instrumentation file is bundled, a `.node`
// file cannot be, and a bundler that sees `require(variable)` tries to bundle a whole directory.
function appRequire() {
  const nodeModule = typeof process.getBuiltinModule === 'function'
    ? process.getBuiltinModule('node:module')
    : eval('require')('node:module') // Node < 20.16
  return nodeModule.createRequire(path.join(process.cwd(), 'package.json'))
}

function load(name) {
  return appRequire()(name)
}

/**
 * Starts seeding this build's output if no instance has (see above). Resolves at once, to
 * `{ done }`: a promise of the seed report, or `null` when this instance did not seed.
 * `options` are the cache handler's; `distDir` defaults to `.next` (or `FLEETCACHE_DIST_DIR`).
 */
async function register({ distDir, options, claimMs = 600_000, log = console.log } = {}) {
  if (process.env.NEXT_RUNTIME && process.env.NEXT_RUNTIME !== 'nodejs') return { done: Promise.resolve(null) }
  if (process.env.NEXT_PHASE === 'phase-production-build') return { done: Promise.resolve(null) }
  const dir = path.resolve(/* turbopackIgnore: true */ distDir || process.env.FLEETCACHE_DIST_DIR || '.next')
  const done = (async () => {
    const tools = load('fleetcache/tools')
    let buildId
    try {
      buildId = tools.readBuildId(dir)
    } catch (err) {
      log(`[fleetcache] run-time seeding skipped: ${err.message}`)
      return null
    }
    const core = load('fleetcache')._coreFor({ ...(options || {}), buildId, feedIntervalMs: 0 })
    if (!(await core.claimSeeding(claimMs))) return null
    log(`[fleetcache] seeding build ${buildId} from ${dir} (this instance won the claim)`)
    const report = await tools.seed(dir, options, { progress: false })
    log(`[fleetcache] seeded build ${buildId}: ${report.written} written, ${report.existing} already there, ${report.failed.length} failed`)
    return report
  })().catch((err) => {
    log(`[fleetcache] run-time seeding failed (the fleet serves on; pages render on first request): ${err && err.message}`)
    return null
  })
  return { done }
}

// The hook Next reads when next.config.js sets no `cacheHandler`: next/dist/server/lib/
// incremental-cache/index.js (15.5 and 16.x) takes `globalThis[Symbol.for('@next/cache-handlers')]
// .FetchCache` as the handler class of every request's IncrementalCache.
const NEXT_HOOK = Symbol.for('@next/cache-handlers')

/**
 * Makes fleetcache this process's cache handler through the hook above instead of
 * `cacheHandler` in next.config.js: with `cacheHandler` set, Next re-imports the handler's module
 * on every request (`getIncrementalCache` awaits a dynamic `import()` before constructing its
 * IncrementalCache); through the hook it does not. docs/configuration.md, "Hits without the per-request import".
 * Call it from `register()` in the app's `instrumentation.js` (Next awaits it before serving) and
 * leave `cacheHandler` out of next.config.js. Returns the handler class, or `null` outside the
 * Node.js runtime or when the installed `next` does not read the hook (logged: set
 * `cacheHandler` then).
 */
function registerCacheHandler(options, { log = console.error } = {}) {
  if (process.env.NEXT_RUNTIME && process.env.NEXT_RUNTIME !== 'nodejs') return null
  if (!nextReadsHook()) {
    log('[fleetcache] registerCacheHandler: the installed next does not read globalThis[Symbol.for(\'@next/cache-handlers\')].FetchCache; set cacheHandler: require.resolve(\'fleetcache/handler\') in next.config.js instead')
    return null
  }
  const Handler = load('fleetcache').createCacheHandler(options || {})
  globalThis[NEXT_HOOK] = { ...globalThis[NEXT_HOOK], FetchCache: Handler }
  return Handler
}

/** Whether the app's `next` takes its cache handler from the hook (read from its source, once). */
function nextReadsHook() {
  try {
    const file = appRequire().resolve('next/dist/server/lib/incremental-cache/index.js')
    const src = fs.readFileSync(file, 'utf8')
    return src.includes("Symbol.for('@next/cache-handlers')") && src.includes('.FetchCache')
  } catch {
    return false
  }
}

module.exports = { register, registerCacheHandler }
