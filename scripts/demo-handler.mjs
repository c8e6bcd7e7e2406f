#!/usr/bin/env node
// `npm run demo`: starts a local S3 + DynamoDB server (moto on 127.0.0.1) and walks through what
// the cache handler does, the way Next calls it, printing each step. Ctrl-C stops everything.
// (The two-instance Next.js demo arrives with the example app.)
import { createRequire } from 'node:module'
import { startLocalAws } from './local-aws.mjs'

const require = createRequire(import.meta.url)
let fc
try {
  fc = require('../index.js')
} catch (err) {
  console.error('The native addon is not built yet: run `npm install` first.\n', err.message)
  process.exit(1)
}

const step = (n, text) => console.log(`\n\x1b[1m${n}. ${text}\x1b[0m`)
const show = (label, v) => console.log(`   ${label}: ${v}`)

console.log('Starting a local S3 + DynamoDB server (moto; installed into .local/venv on first run)…')
const aws = await startLocalAws()
process.on('SIGINT', async () => {
  await aws.stop()
  process.exit(130)
})
Object.assign(process.env, aws.env)
const options = { bucket: 'fleetcache-demo', table: 'fleetcache-demo', s3Endpoint: aws.endpoint, dynamodbEndpoint: aws.endpoint, region: 'us-east-1' }
try {
  await fc._coreFor(options).ensureResources()
  show('endpoint', aws.endpoint)
  show('bucket / table', `${options.bucket} / ${options.table}`)

  const CacheHandler = fc.createCacheHandler(options)
  const handler = new CacheHandler({}) // Next does this ~3× per request; it is cheap
  const key = '/route-cache/APP_PAGE/' + 'c3'.repeat(32) + '/$/blog/hello'
  const ctx = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false }
  const rsc = Buffer.from('0:{"a":"$@1"}\n1:["$","h1",null,{"children":"Hello"}]\n')
  const page = {
    kind: 'APP_PAGE',
    html: '<html><body><h1>Hello</h1></body></html>',
    rscData: rsc,
    postponed: undefined,
    headers: { 'x-nextjs-stale-time': '300', 'x-next-cache-tags': '_N_T_/layout,_N_T_/blog/hello,posts' },
    status: undefined,
    segmentData: new Map([['/_tree', Buffer.from('{}')], ['/_full', rsc]]),
  }

  step(1, 'First request: get → miss, Next renders, then set (S3 object + tag index in DynamoDB)')
  show('get', JSON.stringify(await handler.get(key, ctx)))
  await handler.set(key, page, { ...ctx, cacheControl: { revalidate: 60, expire: 31536000 } })
  show('stored at', `s3://${options.bucket}/${fc._coreFor(options).objectKey(key, 'APP_PAGE')}`)

  step(2, 'Next request: served from this instance\'s memory (no network, no async hop)')
  let t0 = process.hrtime.bigint()
  let got = await handler.get(key, ctx)
  show('get', `HIT "${got.value.html.slice(0, 40)}…" in ${Number(process.hrtime.bigint() - t0) / 1000} µs`)
  show('types', `rscData is Buffer: ${Buffer.isBuffer(got.value.rscData)}, segmentData is Map: ${got.value.segmentData instanceof Map}, cacheControl: ${JSON.stringify(got.cacheControl)}`)

  step(3, 'A cold instance (memory dropped) loads the same entry from S3')
  fc._coreFor(options).clearMemory()
  t0 = process.hrtime.bigint()
  got = await handler.get(key, ctx)
  show('get', `HIT from S3 in ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(2)} ms`)

  step(4, "revalidateTag('posts', 'max') → the entry is served STALE (lastModified moved back) while Next regenerates")
  await new Promise((r) => setTimeout(r, 5))
  await handler.revalidateTag(['posts'], { expire: 31536000 })
  got = await handler.get(key, ctx)
  show('get', `lastModified is ${((Date.now() - got.lastModified) / 1000).toFixed(1)} s ago (> revalidate 60 s → Next serves STALE and regenerates)`)

  step(5, 'Which URLs should a CDN purge for tag "posts"?')
  show('pathsForTags', JSON.stringify(await fc.pathsForTags(['posts'], options)))

  step(6, "revalidatePath('/blog/hello') → tag _N_T_/blog/hello expires now → get returns null (blocking re-render)")
  await handler.revalidateTag(['_N_T_/blog/hello'])
  show('get', JSON.stringify(await handler.get(key, ctx)))

  step(7, 'Counters')
  const s = fc.stats(options)
  show('stats', `memoryHits=${s.memoryHits} backendHits=${s.backendHits} misses=${s.misses} stale=${s.stale} expired=${s.expired} memoryBytes=${s.memoryBytes}`)
  console.log('\nDone. Stopping the local server.')
} finally {
  await aws.stop()
}
