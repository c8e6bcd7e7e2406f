'use strict'
// `fleetcache seed`: puts a build's prerendered output into the shared store, under the exact key
// and value shape Next asks for at run time, so the first request to every prerendered route after
// a deploy is a hit instead of a blocking render on every cold instance (`next build` never hands
// those pages to a cache handler — contract finding 6).
//
// What is read (`<distDir>` = `.next` unless given):
// - `BUILD_ID`, `prerender-manifest.json` (`routes`, `notFoundRoutes`);
// - app router: `server/app/<path>.html|.rsc|.meta` and `.segments/<segment>.segment.rsc`
//   (APP_PAGE), `server/app/<path>.body|.meta` (APP_ROUTE);
// - pages router: `server/pages/<path>.html|.json|.meta` (PAGES); `notFoundRoutes` → `null`.
// The key is the one the build recorded in `.meta` (`routeCache.key`, Next ≥ 15.5.27 / 16.3.8);
// older builds have no such record and use bare paths (`/isr`, `/index`), as those versions do.
// `lastModified` is the file's mtime and `cacheControl` the manifest's `initialRevalidateSeconds`
// / `initialExpireSeconds`: what Next's own file-system cache reports for the same files.
//
// The build's folder is listed first and entries already there are skipped; every write is also
// conditional (S3 `If-None-Match: *`), so a second run, or several deploy jobs at once, write
// nothing that is already there, and never overwrite a page the fleet re-rendered.

const fs = require('node:fs')
const path = require('node:path')
const crypto = require('node:crypto')

/** Next's `normalizePagePath`: `/` → `/index`, `/index/x` → `/index/index/x`. */
function normalizePagePath(p) {
  if (p === '/') return '/index'
  if (/^\/index(\/|$)/.test(p) && !/\[.+\]/.test(p)) return `/index${p}`
  return p.startsWith('/') ? p : `/${p}`
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'))
}

function readMeta(file) {
  try {
    return readJson(file)
  } catch (err) {
    if (err.code === 'ENOENT') return undefined
    throw new Error(`${file}: ${err.message}`)
  }
}

function kindOf(route) {
  if (route.dataRoute === null) return 'APP_ROUTE'
  if (typeof route.dataRoute !== 'string') return undefined
  if (route.dataRoute.endsWith('.rsc')) return 'APP_PAGE'
  if (route.dataRoute.endsWith('.json')) return 'PAGES'
  return undefined
}

function cacheControlOf(route) {
  const r = route.initialRevalidateSeconds
  if (r !== false && typeof r !== 'number') return undefined
  const cc = { revalidate: r }
  if (typeof route.initialExpireSeconds === 'number') cc.expire = route.initialExpireSeconds
  return cc
}

/**
 * The build's seedable entries, described without reading their bodies: `{ path, kind, key,
 * load() }`, where `load()` returns `{ value, lastModified, cacheControl }`. `skipped` lists
 * manifest routes that are not seeded, with why.
 */
/** Next's build ID from `<distDir>/BUILD_ID`; throws, saying what to do, when there is none. */
function readBuildId(distDir) {
  const dir = path.resolve(distDir)
  try {
    return fs.readFileSync(path.join(dir, 'BUILD_ID'), 'utf8').trim()
  } catch {
    throw new Error(`${dir} holds no BUILD_ID: run \`next build\` first, or pass the app's distDir (fleetcache seed <distDir>)`)
  }
}

function readBuild(distDir) {
  const dir = path.resolve(distDir)
  const buildId = readBuildId(dir)
  const manifestFile = path.join(dir, 'prerender-manifest.json')
  const manifest = readJson(manifestFile)
  const entries = []
  const skipped = []
  let routeScoped = false
  const notFound = new Set(manifest.notFoundRoutes || [])

  for (const [route, info] of Object.entries(manifest.routes || {})) {
    if (notFound.has(route)) continue
    const kind = kindOf(info)
    if (kind === undefined) {
      skipped.push({ path: route, why: `unknown data route ${JSON.stringify(info.dataRoute)}` })
      continue
    }
    const base = path.join(dir, 'server', kind === 'PAGES' ? 'pages' : 'app', normalizePagePath(route))
    const primary = base + (kind === 'APP_ROUTE' ? '.body' : '.html')
    if (!fs.existsSync(primary)) {
      skipped.push({ path: route, why: `no ${path.relative(dir, primary)} (rendered at request time)` })
      continue
    }
    const meta = readMeta(base + '.meta')
    if (meta && meta.routeCache) {
      routeScoped = true
      if (meta.routeCache.isFallback) {
        skipped.push({ path: route, why: 'a fallback shell' })
        continue
      }
    }
    const key = meta && meta.routeCache && typeof meta.routeCache.key === 'string' ? meta.routeCache.key : normalizePagePath(route)
    const cacheControl = cacheControlOf(info)
    entries.push({
      path: route,
      kind,
      key,
      load() {
        const lastModified = (meta && meta.routeCacheLastModified) || fs.statSync(primary).mtimeMs
        let value
        if (kind === 'APP_ROUTE') {
          value = { kind, body: fs.readFileSync(primary), status: meta && meta.status, headers: meta && meta.headers }
        } else if (kind === 'APP_PAGE') {
          let segmentData
          if (meta && Array.isArray(meta.segmentPaths)) {
            segmentData = new Map()
            for (const seg of meta.segmentPaths) {
              try {
                segmentData.set(seg, fs.readFileSync(`${base}.segments${seg}.segment.rsc`))
              } catch {
                // As Next does: a missing segment is treated as dynamic (no prefetch data).
              }
            }
          }
          let rscData
          try {
            rscData = fs.readFileSync(base + '.rsc')
          } catch {}
          value = {
            kind,
            html: fs.readFileSync(primary, 'utf8'),
            rscData,
            postponed: meta && meta.postponed,
            headers: meta && meta.headers,
            status: meta && meta.status,
            segmentData,
          }
        } else {
          value = {
            kind,
            html: fs.readFileSync(primary, 'utf8'),
            pageData: readJson(base + '.json'),
            headers: meta && meta.headers,
            status: meta && meta.status,
          }
        }
        return { value, lastModified: Math.floor(lastModified), cacheControl }
      },
    })
  }

  // Pages-router `notFound` routes: a cached `null` under the page's key.
  const manifestTime = Math.floor(fs.statSync(manifestFile).mtimeMs)
  for (const route of notFound) {
    const info = (manifest.routes || {})[route] || {}
    const np = normalizePagePath(route)
    const source = typeof info.srcRoute === 'string' ? info.srcRoute : route
    const key = routeScoped ? `/route-cache/PAGES/${crypto.createHash('sha256').update(source).digest('hex')}/$${np}` : np
    const cacheControl = cacheControlOf(info)
    entries.push({ path: route, kind: 'PAGES', key, notFound: true, load: () => ({ value: null, lastModified: manifestTime, cacheControl }) })
  }
  return { buildId, distDir: dir, entries, skipped }
}

/** Progress on a terminal: one rewritten line; otherwise a plain line every tenth of the way. `verb` names what the second count is. */
function progressReporter(total, out = process.stderr, label = 'seed', verb = 'written') {
  const tty = Boolean(out.isTTY)
  let lastDecile = -1
  let finished = false
  return (done, written) => {
    if (tty) {
      const width = 30
      const filled = total === 0 ? width : Math.round((done / total) * width)
      out.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} (${written} ${verb})`)
      if (done === total) out.write('\n')
    } else {
      const decile = total === 0 ? 10 : Math.floor((done / total) * 10)
      if (decile !== lastDecile || (done === total && !finished)) {
        out.write(`${label}: ${done}/${total} (${written} ${verb})\n`)
        lastDecile = decile
        finished = done === total
      }
    }
  }
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool(items, limit, fn) {
  let next = 0
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++
      await fn(items[i], i)
    }
  })
  await Promise.all(workers)
}

/**
 * Seeds `distDir`'s prerendered output into the store `options` name. Resolves to
 * `{ buildId, total, written, existing, failed: [{path, key, message}], skipped }`. With
 * `dryRun`, writes nothing (not even the build marker) and lists in `wouldWrite` the entries a
 * real run would write (`[{path, key, objectKey, kind, bytes}]`).
 */
async function seed(distDir = '.next', options = {}, { concurrency = 16, progress, toInput, coreFor, dryRun = false } = {}) {
  const build = readBuild(distDir)
  const core = coreFor({ ...options, buildId: build.buildId, feedIntervalMs: 0 })
  if (!dryRun) await core.registerBuild()
  // One listing (a request per 1,000 keys) spares re-uploading what is there already; the
  // conditional write still decides when runs overlap.
  const present = new Set(await core.buildObjectKeys(build.buildId))
  const report = { buildId: build.buildId, total: build.entries.length, written: 0, existing: 0, failed: [], skipped: build.skipped }
  if (dryRun) {
    report.dryRun = true
    report.wouldWrite = []
  }
  let done = 0
  const tick = progress === false ? () => {} : progress || progressReporter(build.entries.length)
  tick(0, 0)
  await pool(build.entries, concurrency, async (e) => {
    try {
      if (present.has(core.objectKey(e.key, e.kind))) {
        report.existing++
        tick(++done, report.written)
        return
      }
      const { value, lastModified, cacheControl } = e.load()
      const input = toInput(value, { kind: e.kind, cacheControl })
      if (dryRun) {
        const bytes = (input.html ? Buffer.byteLength(input.html) : 0) + (input.rscData ? input.rscData.length : 0) + (input.buf ? input.buf.length : 0)
        report.wouldWrite.push({ path: e.path, key: e.key, objectKey: core.objectKey(e.key, e.kind), kind: e.kind, bytes })
        tick(++done, report.written)
        return
      }
      const r = await core.seed(e.key, input, lastModified)
      if (!r.ok) report.failed.push({ path: e.path, key: e.key, message: `${r.code}: ${r.message}` })
      else if (r.written) report.written++
      else report.existing++
    } catch (err) {
      report.failed.push({ path: e.path, key: e.key, message: err && err.message })
    }
    tick(++done, report.written)
  })
  if (report.failed.length === 0 && !dryRun) await core.markSeeded()
  if (dryRun) report.wouldWrite.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  return report
}

module.exports = { seed, readBuild, readBuildId, normalizePagePath, progressReporter, pool }
