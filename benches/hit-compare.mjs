// A/B of the in-memory hit path across builds: `node benches/hit-compare.mjs <checkout>` runs the
// first section of `npm run bench` against that checkout's index.js and addon (e.g. two git worktrees
// with release builds), so two builds can alternate in one session and their ratios be compared.
import { createRequire } from 'node:module'
import path from 'node:path'
import { measure } from './measure.mjs'
const root = path.resolve(process.argv[2])
const require = createRequire(path.join(root, 'x.js'))
const fc = require('./index.js')
const { realisticPage } = await import(path.join(root, 'benches', 'fixtures.mjs'))
const page = realisticPage()
const key = '/route-cache/APP_PAGE/' + 'ab'.repeat(32) + '/$/products'
const ctxGet = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false }
const ctxSet = { ...ctxGet, cacheControl: { revalidate: 60, expire: 31536000 } }
const mem = { backend: 'memory', prefix: 'bench' }
const h = new (fc.createCacheHandler(mem))({})
await h.set(key, page, ctxSet)
await h.get(key, ctxGet)
const held = { lastModified: Date.now(), value: page, cacheControl: ctxSet.cacheControl }
async function plainJs() {
  const v = held.value
  const segmentData = new Map()
  for (const [k, b] of v.segmentData) segmentData.set(k, Buffer.from(b))
  return { lastModified: held.lastModified, value: { kind: v.kind, html: v.html, rscData: Buffer.from(v.rscData), postponed: v.postponed, headers: { ...v.headers }, status: v.status, segmentData }, cacheControl: { ...held.cacheControl } }
}
const plain = await measure(plainJs, 20000)
const hit = await measure(() => h.get(key, ctxGet), 20000)
console.log(`${path.basename(root)}: plain ${(plain / 1e3).toFixed(2)} µs, hit ${(hit / 1e3).toFixed(2)} µs, ratio ${(hit / plain).toFixed(2)}`)
