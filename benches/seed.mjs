// `fleetcache seed` throughput: a synthetic build of N realistic app-router pages (the bench's
// APP_PAGE fixture: html, rsc, segments, .meta with the route-scoped key) seeded into the local
// server with 16 writes in flight and with 1, side by side, then a second (no-op) run.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createRequire } from 'node:module'
import { realisticPage } from './fixtures.mjs'

const require = createRequire(import.meta.url)
const tools = require('../tools/index.js')

function syntheticBuild(n) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-seed-bench-'))
  const app = path.join(dir, 'server', 'app', 'p')
  fs.mkdirSync(app, { recursive: true })
  fs.writeFileSync(path.join(dir, 'BUILD_ID'), `bench-${Date.now()}`)
  const page = realisticPage()
  const routes = {}
  for (let i = 0; i < n; i++) {
    const p = `/p/${i}`
    routes[p] = { initialRevalidateSeconds: 3600, initialExpireSeconds: 31536000, srcRoute: '/p/[id]', dataRoute: `/p/${i}.rsc` }
    fs.writeFileSync(path.join(app, `${i}.html`), page.html.replace('<body', `<body data-i="${i}"`))
    fs.writeFileSync(path.join(app, `${i}.rsc`), page.rscData)
    fs.mkdirSync(path.join(app, `${i}.segments`))
    for (const [seg, buf] of page.segmentData) {
      const f = path.join(app, `${i}.segments`, `${seg}.segment.rsc`)
      fs.mkdirSync(path.dirname(f), { recursive: true })
      fs.writeFileSync(f, buf)
    }
    fs.writeFileSync(path.join(app, `${i}.meta`), JSON.stringify({
      headers: page.headers,
      segmentPaths: [...page.segmentData.keys()],
      routeCache: { key: `/route-cache/APP_PAGE/${'cd'.repeat(32)}/$${p}`, isFallback: false },
    }))
  }
  fs.writeFileSync(path.join(dir, 'prerender-manifest.json'), JSON.stringify({ routes, notFoundRoutes: [] }))
  return dir
}

export async function seedBench({ options, n }) {
  const dir = syntheticBuild(n)
  const run = async (prefix, concurrency) => {
    const t0 = process.hrtime.bigint()
    const r = await tools.seed(dir, { ...options, prefix }, { concurrency, progress: false })
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    if (r.failed.length) throw new Error(`seed failed: ${JSON.stringify(r.failed[0])}`)
    return { ms, written: r.written, existing: r.existing }
  }
  const tag = Date.now().toString(36)
  const parallel = await run(`seed16-${tag}`, 16)
  const serial = await run(`seed1-${tag}`, 1)
  const again = await run(`seed16-${tag}`, 16)
  fs.rmSync(dir, { recursive: true, force: true })
  return { n, parallel, serial, again }
}
