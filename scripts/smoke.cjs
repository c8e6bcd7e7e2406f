// Smoke test of one built addon, run by a Node of the addon's own platform (scripts/platforms.mjs):
//   FLEETCACHE_NATIVE_PATH=npm/linux-arm64-musl/fleetcache.linux-arm64-musl.node <node> scripts/smoke.cjs
// Loads the addon through the package's own JS face and, on the memory backend: set, get (a hit),
// revalidateTag, get (a miss). Prints one JSON line and exits 0 only if all four behaved.
'use strict'
const path = require('node:path')

async function main() {
  const fc = require(path.join(__dirname, '..', 'index.js'))
  const { targetOf } = require(path.join(__dirname, '..', 'loader.js'))
  const Handler = fc.createCacheHandler({ backend: 'memory', prefix: 'smoke' })
  const h = new Handler({})
  const key = '/smoke-page'
  const value = { kind: 'APP_ROUTE', body: Buffer.from('hello from ' + targetOf()), status: 200, headers: { 'x-next-cache-tags': 'smoke-tag' } }
  await h.set(key, value, { kind: 'APP_ROUTE', cacheControl: { revalidate: 60, expire: 3600 } })
  const hit = await h.get(key, { kind: 'APP_ROUTE' })
  const hitOk = hit !== null && Buffer.isBuffer(hit.value.body) && hit.value.body.equals(value.body)
  await h.revalidateTag('smoke-tag')
  const after = await h.get(key, { kind: 'APP_ROUTE' })
  const missOk = after === null
  const report = { target: targetOf(), node: process.version, arch: process.arch, hit: hitOk, missAfterRevalidate: missOk }
  console.log(JSON.stringify(report))
  process.exit(hitOk && missOk ? 0 : 1)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
