'use strict'
// Finds and loads the native addon for this platform (hand-written; binding.js calls it, and the
// addon's types in binding.d.ts are generated from the Rust source).
//
// Where the addon comes from, in order:
//   1. FLEETCACHE_NATIVE_PATH, a path to a `.node` file (platform smoke tests, custom builds);
//   2. `fleetcache.<target>.node` beside this file (a build from source in the repository);
//   3. the platform package `fleetcache-<target>`, which npm installs from the main package's
//      optionalDependencies (only the one matching the machine's os, cpu and libc).
//
// Each platform package is required by its literal name, and only this machine's is ever reached:
// file tracers (`output: 'standalone'`) then find the package the addon comes from, and in an
// installed app (under node_modules, traced as an external) the other platforms' missing packages
// are not reported. The local build and FLEETCACHE_NATIVE_PATH go through `requireOptional`,
// whose argument tracers do not follow.

const { FleetCacheError } = require('./error.js')

/** The targets published as platform packages (`npm/<target>`). */
const TARGETS = [
  'linux-x64-gnu',
  'linux-x64-musl',
  'linux-arm64-gnu',
  'linux-arm64-musl',
  'darwin-arm64',
  'darwin-x64',
  'win32-x64-msvc',
]

/** `gnu` or `musl` on Linux (from the process report: glibc reports its version), else ''. */
function libcOf(platform = process.platform) {
  if (platform !== 'linux') return ''
  try {
    const report = process.report && process.report.getReport ? process.report.getReport() : null
    if (report && report.header && report.header.glibcVersionRuntime) return 'gnu'
    if (report && Array.isArray(report.sharedObjects)) {
      if (report.sharedObjects.some((f) => f.includes('libc.musl-') || f.includes('ld-musl-'))) return 'musl'
    }
  } catch {
    // fall through
  }
  try {
    return require('node:fs').readFileSync('/usr/bin/ldd', 'utf8').includes('musl') ? 'musl' : 'gnu'
  } catch {
    return 'gnu'
  }
}

/** The target name of a platform: `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`, … */
function targetOf(platform = process.platform, arch = process.arch, libc = libcOf(platform)) {
  if (platform === 'linux') return `linux-${arch}-${libc}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

const README_SECTION = 'https://www.npmjs.com/package/fleetcache#platforms'

function noBinaryError(target, cause) {
  const supported = TARGETS.includes(target)
  const why = supported
    ? `the platform package \`fleetcache-${target}\` is not installed (npm skips optional dependencies with --omit=optional or --no-optional, and a lock file made on another platform may lack it: reinstall on this platform)`
    : `there is no prebuilt binary for ${target}`
  return new FleetCacheError(
    'FLEETCACHE_NO_BINARY',
    `fleetcache cannot load its native addon on ${target}: ${why}. ` +
      `Prebuilt binaries exist for ${TARGETS.join(', ')}. ` +
      `To keep Next's own cache where fleetcache has no binary (for example \`next dev\` on a machine without one), ` +
      `see "Platforms" in the README (${README_SECTION}).`,
    cause === undefined ? undefined : { cause },
  )
}

// Hidden from bundlers and tracers: they do not follow a require whose argument is a variable
// when the call itself goes through a variable.
const requireOptional = (id) => module.require(id)

function isNotFound(err, id) {
  return err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(id)
}

/** The platform package for `target`, named literally for tracers (see the top of this file). */
function requirePackage(target) {
  switch (target) {
    case 'linux-x64-gnu':
      return require('fleetcache-linux-x64-gnu')
    case 'linux-x64-musl':
      return require('fleetcache-linux-x64-musl')
    case 'linux-arm64-gnu':
      return require('fleetcache-linux-arm64-gnu')
    case 'linux-arm64-musl':
      return require('fleetcache-linux-arm64-musl')
    case 'darwin-arm64':
      return require('fleetcache-darwin-arm64')
    case 'darwin-x64':
      return require('fleetcache-darwin-x64')
    case 'win32-x64-msvc':
      return require('fleetcache-win32-x64-msvc')
    default:
      return undefined
  }
}

/** Loads the addon for `target` (default: this machine's). Throws FLEETCACHE_NO_BINARY. */
function load(target = targetOf(), env = process.env) {
  // The last error worth reporting (a file or package that exists but fails to load).
  let cause
  if (env.FLEETCACHE_NATIVE_PATH) return requireOptional(env.FLEETCACHE_NATIVE_PATH)
  const local = `./fleetcache.${target}.node`
  try {
    return requireOptional(local)
  } catch (err) {
    if (!isNotFound(err, local.slice(2))) cause = err
  }
  const pkg = `fleetcache-${target}`
  if (TARGETS.includes(target)) {
    try {
      return requirePackage(target)
    } catch (err) {
      // A package that exists but fails to load (wrong libc, a corrupt file) is worth reporting.
      if (!isNotFound(err, pkg)) cause = err
    }
  }
  throw noBinaryError(target, cause)
}

module.exports = { TARGETS, targetOf, libcOf, load, noBinaryError }
