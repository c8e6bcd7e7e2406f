'use strict'
// The process's native cores: one per configuration, shared by every handler Next constructs,
// with Next's BUILD_ID adopted from the first handler that names its dist directory, and the
// SIGTERM hook that delivers what their outboxes hold.

const fs = require('node:fs')
const path = require('node:path')
const binding = require('../binding.js')
const { fromNative, PURGE_HOOK, usePurgeHook } = require('./options.js')
const { warn } = require('./log.js')

const cores = new Map()

/** Next's version as the app resolves it (for the heartbeat), or undefined. */
function nextVersion() {
  try {
    return require(require.resolve('next/package.json', { paths: [process.cwd(), __dirname] })).version
  } catch {
    return undefined
  }
}
const buildIds = new Map()

/** `<distDir>/BUILD_ID` next to Next's `serverDistDir`, read once per directory. */
function buildIdFromDist(serverDistDir) {
  if (typeof serverDistDir !== 'string') return undefined
  if (buildIds.has(serverDistDir)) return buildIds.get(serverDistDir)
  let id
  try {
    id = fs.readFileSync(path.join(serverDistDir, '..', 'BUILD_ID'), 'utf8').trim() || undefined
  } catch {
    id = undefined
  }
  buildIds.set(serverDistDir, id)
  return id
}

/**
 * The one native core for these options, created on first use: one per process, whatever the
 * build (Next's BUILD_ID is adopted by the core when a handler is constructed with
 * `serverDistDir`), so each process runs exactly one feed poller per configuration.
 */
function coreFor(options, serverDistDir) {
  const key = JSON.stringify(Object.keys(options).sort().map((k) => [k, options[k]]))
  let core = cores.get(key)
  if (core === undefined) {
    try {
      core = new binding.NativeCache(options)
    } catch (err) {
      throw fromNative(err)
    }
    if (options[PURGE_HOOK] !== undefined) usePurgeHook(core, options[PURGE_HOOK])
    core.setNextVersion(nextVersion())
    cores.set(key, core)
    flushOnSigterm()
  }
  if (serverDistDir !== undefined && !adopted.has(core)) {
    const id = buildIdFromDist(serverDistDir)
    if (id !== undefined) {
      core.adoptBuildId(id)
      adopted.add(core)
      // Registers the build for `fleetcache prune` (first writer wins; best effort).
      core.registerBuild().catch((err) => warn('could not register the build', err && err.message))
    }
  }
  return core
}
const adopted = new WeakSet()

/** How long the SIGTERM hook may block to deliver revalidations not landed yet (docs/faults.md). */
const SHUTDOWN_FLUSH_MS = 5_000
/** How long the SIGTERM hook may block to take this instance's heartbeat out of the fleet. */
const SHUTDOWN_LEAVE_MS = 1_000
let sigtermHooked = false

/**
 * On SIGTERM, delivers every core's outbox (revalidations and feed events DynamoDB has not taken
 * yet) before the process goes, for at most SHUTDOWN_FLUSH_MS. Synchronous: `next start` exits
 * from its own SIGTERM handler once its server has closed, and nothing async of ours would run
 * after that. When no one else listens, the signal is raised again so the process still ends.
 */
function flushOnSigterm() {
  if (sigtermHooked) return
  sigtermHooked = true
  process.once('SIGTERM', () => {
    for (const core of cores.values()) {
      try {
        // What is still not delivered goes to the spool (spoolDir), for the next start here.
        if (core.stats().outboxDepth > 0 && core.flushBlocking(SHUTDOWN_FLUSH_MS) > 0) core.spoolOutbox()
      } catch (err) {
        warn('shutdown flush failed', err && err.message)
      }
      try {
        // Out of the fleet at once: status and receipts stop waiting for this instance.
        core.leaveBlocking(SHUTDOWN_LEAVE_MS)
      } catch (err) {
        warn('leaving the fleet failed', err && err.message)
      }
    }
    if (process.listenerCount('SIGTERM') === 0) process.kill(process.pid, 'SIGTERM')
  })
}

/**
 * Cores that serve Next (made by `createCacheHandler` / `createUseCacheHandler`), in creation
 * order: what `metrics()` reports. The tools' own short-lived cores (seeding at start, doctor)
 * are not among them.
 */
const servedCores = new Set()

module.exports = { coreFor, adopted, servedCores }
