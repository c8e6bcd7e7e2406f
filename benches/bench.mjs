#!/usr/bin/env node
// `npm run bench`: the hit path, S3 reads and writes, and stored size, for a realistic APP_PAGE
// entry, measured side by side in one run. Starts its own local S3 + DynamoDB server (moto).
// Figures for the local server are loopback + moto costs, not AWS latencies.
import { createRequire } from 'node:module'
import os from 'node:os'
import { startLocalAws } from '../scripts/local-aws.mjs'
import { realisticPage, jsonBase64 } from './fixtures.mjs'
import { propagation } from './propagation.mjs'
import { seedBench } from './seed.mjs'
import { useCacheBench } from './use-cache.mjs'
import { measure } from './measure.mjs'
import { s3PathBench } from './s3-path.mjs'

const require = createRequire(import.meta.url)
const fc = require('../index.js')

const args = new Set(process.argv.slice(2))
const QUICK = args.has('--quick')

function fmt(ns) {
  return ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : `${(ns / 1e3).toFixed(2)} µs`
}


async function percentiles(fn, iters) {
  const samples = []
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint()
    await fn(i)
    samples.push(Number(process.hrtime.bigint() - t0))
  }
  samples.sort((a, b) => a - b)
  return { p50: samples[Math.floor(iters * 0.5)], p99: samples[Math.min(iters - 1, Math.floor(iters * 0.99))] }
}

const page = realisticPage()
const key = '/route-cache/APP_PAGE/' + 'ab'.repeat(32) + '/$/products'
const ctxGet = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false }
const ctxSet = { ...ctxGet, cacheControl: { revalidate: 60, expire: 31536000 } }
const segBytes = [...page.segmentData.values()].reduce((n, b) => n + b.length, 0)

console.log(`fleetcache bench — node ${process.version}, ${os.cpus().length} × ${os.cpus()[0].model}, ${os.platform()} ${os.arch()}`)
console.log(`entry: APP_PAGE, html ${page.html.length} B, rscData ${page.rscData.length} B, segmentData ${page.segmentData.size} segments / ${segBytes} B\n`)

// --- the in-memory hit path vs building the same value in plain JS ---------------------------
const mem = { backend: 'memory', prefix: 'bench' }
const h = new (fc.createCacheHandler(mem))({})
await h.set(key, page, ctxSet)
await h.get(key, ctxGet) // learn the tags
const stats0 = fc.stats(mem)
const held = { lastModified: Date.now(), value: page, cacheControl: ctxSet.cacheControl }
async function plainJs() {
  const v = held.value
  const segmentData = new Map()
  for (const [k, b] of v.segmentData) segmentData.set(k, Buffer.from(b))
  return {
    lastModified: held.lastModified,
    value: { kind: v.kind, html: v.html, rscData: Buffer.from(v.rscData), postponed: v.postponed, headers: { ...v.headers }, status: v.status, segmentData },
    cacheControl: { ...held.cacheControl },
  }
}
const iters = QUICK ? 2000 : 20000
const plainNs = await measure(plainJs, iters)
const mapHeld = new Map([[key, held]])
const mapNs = await measure(async () => mapHeld.get(key), iters)
const hitNs = await measure(() => h.get(key, ctxGet), iters)
const hCold = new (fc.createCacheHandler(mem))({})
hCold.values = { gen() {}, serve() {}, set() {}, delete() {} } // every hit is built afresh from the native copy
const coldNs = await measure(() => hCold.get(key, ctxGet), iters)
const stats1 = fc.stats(mem)
if (stats1.memoryHits - stats0.memoryHits < iters * 10) throw new Error('hits did not come from memory')
console.log('in-memory hit, full JS API (`await handler.get`)')
console.log(`  plain JS: build the value, copying its Buffers  ${fmt(plainNs)}/op`)
console.log(`  a Map handler: the held object, no copies         ${fmt(mapNs)}/op`)
console.log(`  fleetcache get() from the in-memory tier          ${fmt(hitNs)}/op   → ${(hitNs / plainNs).toFixed(2)}× plain JS (target ≤ 2×)`)
console.log(`  same, the value built afresh on every hit         ${fmt(coldNs)}/op   → ${(coldNs / plainNs).toFixed(2)}× (the first hit of a new copy)`)

// --- stored bytes -----------------------------------------------------------------------------
const stored = fc._coreFor(mem).encodedLen(key)
const jsonForm = Buffer.byteLength(jsonBase64({ lastModified: held.lastModified, value: page, tags: [] }))
console.log('\nstored bytes for this entry')
console.log(`  JSON + base64 Buffers (popular JS handlers)   ${jsonForm} B`)
console.log(`  fleetcache (msgpack + zstd, /_full once)      ${stored} B   → ${(stored / jsonForm).toFixed(3)}× (target ≤ 0.10×)`)

// --- 'use cache' handlers, in memory -------------------------------------------------------------
const uc = await useCacheBench({ fc, quick: QUICK })
console.log(`\n'use cache' handler, in memory: fleetcache/use-cache vs Next ${uc.nextVersion}'s built-in default (LRU); get reads its stream`)
for (const { size, builtin, ours } of uc.sizes) {
  console.log(`  ${(size / 1024).toFixed(0).padStart(2)} KB  get  built-in ${fmt(builtin.getNs)}/op, fleetcache ${fmt(ours.getNs)}/op → ${(ours.getNs / builtin.getNs).toFixed(2)}×`)
  console.log(`         set  built-in ${fmt(builtin.setNs)}/op, fleetcache ${fmt(ours.setNs)}/op → ${(ours.setNs / builtin.setNs).toFixed(2)}×`)
}

// --- S3 / DynamoDB through a local protocol server ----------------------------------------------
const aws = await startLocalAws()
try {
  Object.assign(process.env, aws.env)
  const awsOpts = { bucket: `bench-${Date.now()}`, table: `bench-${Date.now()}`, s3Endpoint: aws.endpoint, dynamodbEndpoint: aws.endpoint, region: 'us-east-1' }
  await fc._coreFor(awsOpts).ensureResources()
  const ha = new (fc.createCacheHandler(awsOpts))({})
  const core = fc._coreFor(awsOpts)
  const n = QUICK ? 50 : 300
  const setP = await percentiles((i) => ha.set(`${key}-${i}`, page, ctxSet), n)
  await ha.get(key + '-0', ctxGet)
  const memP = await percentiles(() => ha.get(key + '-0', ctxGet), n)
  const s3P = await percentiles(async () => {
    core.clearMemory()
    const got = await ha.get(key + '-0', ctxGet)
    if (!got) throw new Error('miss')
  }, n)
  console.log(`\nlocal S3 + DynamoDB (moto on ${aws.endpoint}), ${n} ops each, p50 / p99`)
  console.log(`  set (encode + S3 PutObject + index)            ${fmt(setP.p50)} / ${fmt(setP.p99)}`)
  console.log(`  get, in-memory tier                            ${fmt(memP.p50)} / ${fmt(memP.p99)}`)
  console.log(`  get, from S3 (GetObject + decode + tag states) ${fmt(s3P.p50)} / ${fmt(s3P.p99)}   → memory is ${(s3P.p50 / memP.p50).toFixed(0)}× faster`)

  const sp = await s3PathBench({ fc, options: { ...awsOpts, prefix: 's3-path' }, endpoint: aws.endpoint, iters: QUICK ? 40 : 200 })
  console.log(`\nget from S3 vs a raw @aws-sdk/client-s3 GetObject of the same object (medians of ${QUICK ? 40 : 200}, three rounds alternated; target ≤ 1.2×)`)
  for (const s of sp) {
    const ratios = s.rounds.map((r) => r.fleetcache / r.raw)
    const cells = s.rounds.map((r) => `${fmt(r.fleetcache)} vs ${fmt(r.raw)}`).join('; ')
    console.log(`  ${s.label.padEnd(7)} (${String(s.stored).padStart(7)} B stored)  ${cells}   → ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}×`)
  }

  const sb = await seedBench({ options: awsOpts, n: QUICK ? 50 : 300 })
  const rate = (r) => ((sb.n / r.ms) * 1000).toFixed(0)
  console.log(`\nfleetcache seed: ${sb.n} app-router pages like the entry above (conditional PutObject + index rows)`)
  console.log(`  16 writes in flight   ${sb.parallel.ms.toFixed(0)} ms (${rate(sb.parallel)} entries/s, ${sb.parallel.written} written)`)
  console.log(`  1 write in flight     ${sb.serial.ms.toFixed(0)} ms (${rate(sb.serial)} entries/s)   → ${(sb.serial.ms / sb.parallel.ms).toFixed(1)}× slower`)
  console.log(`  second run            ${sb.again.ms.toFixed(0)} ms, ${sb.again.written} written, ${sb.again.existing} already there`)

  const p = await propagation({ endpoint: aws.endpoint, env: aws.env, fc, quick: QUICK })
  console.log(`\npropagation: 3 processes, ${p.n} revalidations, default feed interval (250 ms)`)
  console.log(`  revalidateTag resolved in A → seen by B and C    p50 ${p.p50} ms, p99 ${p.p99} ms, max ${p.max} ms (target p99 ≤ 300 ms)`)
  console.log(`  receipts (${p.receipts.n}): B and C applied it after     p50 ${p.receipts.appliedP50} ms, p99 ${p.receipts.appliedP99} ms (A's own: 0); the caller waited p50 ${p.receipts.waitedP50.toFixed(0)} ms, p99 ${p.receipts.waitedP99.toFixed(0)} ms; ${p.receipts.incomplete} incomplete`)
  console.log(`  DynamoDB requests/s of an idle process          ${p.idle.reads.toFixed(2)} reads, ${p.idle.writes.toFixed(2)} writes (target ≤ 4 reads; heartbeats every 15 s)`)
  console.log(`  the same without heartbeats (heartbeatMs 0)     ${p.idleNoBeat.reads.toFixed(2)} reads, ${p.idleNoBeat.writes.toFixed(2)} writes`)
  console.log(`  same process serving ${p.getsPerSecond.toFixed(0)} gets/s                ${p.loaded.reads.toFixed(2)} reads, ${p.loaded.writes.toFixed(2)} writes`)
} finally {
  await aws.stop()
}
process.exit(0) // the cores' feed pollers would otherwise keep the process alive
