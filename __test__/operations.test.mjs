// What an operator sees: log lines (one line each, levels, JSON, routed to the app's logger,
// never a secret or a Debug dump), and metrics (Prometheus text checked by an independent
// parser, the OpenTelemetry bridge read through the SDK).
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { spawnSync, spawn } from 'node:child_process'
import http from 'node:http'
import path from 'node:path'
import { createRequire } from 'node:module'
import { backends, handlerFor, dropMemory, fc } from './helpers.mjs'
import { parseExposition, sampleValue } from './prometheus.mjs'

const require = createRequire(import.meta.url)
const parsePrometheus = require('parse-prometheus-text-format')
const root = path.resolve(import.meta.dirname, '..')
const SECRET = 'sekrit-Recognisable-0123456789'

/** A server answering every request with `status` (an S3/DynamoDB stand-in that misbehaves). */
function answering(status) {
  return new Promise((resolve) => {
    const s = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        res.writeHead(status, status === 307 ? { location: 'http://127.0.0.1:1/elsewhere' } : {})
        res.end()
      })
    })
    s.listen(0, '127.0.0.1', () => resolve(s))
  })
}

/** Runs the fixture that provokes every error path; resolves to its stdout + stderr. */
function provoke(endpoint, env, ...modes) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(root, '__test__', 'fixtures', 'log-provoke.mjs'), endpoint, ...modes], {
      env: { PATH: process.env.PATH, AWS_EC2_METADATA_DISABLED: 'true', AWS_REGION: 'us-east-1', AWS_SECRET_ACCESS_KEY: SECRET, AWS_SESSION_TOKEN: `${SECRET}-token`, ...env },
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('close', (code) => resolve({ code, out, err, all: out + err }))
  })
}

function expectClean(text) {
  expect(text).not.toContain(SECRET)
  expect(text).not.toMatch(/GenericFailure|DispatchFailure|ConnectorError|ProviderChainError|SdkError|\{ kind:|source: /)
  for (const line of text.split('\n')) expect(line.length, line).toBeLessThan(600)
}

describe('logs', () => {
  let s500
  let s307
  beforeAll(async () => {
    s500 = await answering(500)
    s307 = await answering(307)
  })
  afterAll(() => {
    s500.close()
    s307.close()
  })

  it('HTTP 500: one line per failure with the operation and status, debug lines per operation, no secret', async () => {
    const r = await provoke(`http://127.0.0.1:${s500.address().port}`, { AWS_ACCESS_KEY_ID: 'AKIATESTONLY', FLEETCACHE_LOG: 'debug' })
    expect(r.code, r.all).toBe(0)
    expectClean(r.all)
    expect(r.err).toMatch(/\[fleetcache\] debug: S3: GetObject FLEETCACHE_BACKEND: GetObject: HTTP 500 no error code \(server error\) in [\d.]+ ms/)
    expect(r.err).toMatch(/\[fleetcache\] debug: set: \/p \(APP_PAGE\)/)
    expect(r.err).toMatch(/\[fleetcache\] debug: revalidateTag: \["t"\]/)
    expect(r.out).toMatch(/pathsForTags rejected: FLEETCACHE_BACKEND: (Query: HTTP 500|DynamoDB unavailable \(circuit open)/)
    expect(r.out).toMatch(/doctor FAIL bucket: listing `log-bucket` failed: HTTP 500 \(server error\)/)
    expect(r.all).toMatch(/done/)
  })

  it('HTTP 307: the status and what it most likely means', async () => {
    const r = await provoke(`http://127.0.0.1:${s307.address().port}`, { AWS_ACCESS_KEY_ID: 'AKIATESTONLY' })
    expectClean(r.all)
    expect(r.out).toMatch(/prune rejected: FLEETCACHE_BACKEND: ListObjectsV2: HTTP 307 no error code \(redirect: the bucket is in another region, set `region`\)/)
    expect(r.out).toMatch(/doctor FAIL table: DescribeTable on `log-table` failed: HTTP 307 \(redirect/)
  })

  it('no credentials and a closed port: one summarised line each, JSON lines on request', async () => {
    let r = await provoke('http://127.0.0.1:9', { FLEETCACHE_LOG_FORMAT: 'json' })
    expectClean(r.all)
    const json = r.err.split('\n').filter((l) => l.startsWith('{'))
    expect(json.length).toBeGreaterThan(2)
    for (const l of json) expect(JSON.parse(l)).toMatchObject({ level: expect.stringMatching(/^(error|warn)$/), source: 'fleetcache', event: expect.any(String), msg: expect.any(String) })
    expect(r.err).toMatch(/"msg":"\/p: FLEETCACHE_BACKEND: GetObject: no usable AWS credentials \(set AWS_ACCESS_KEY_ID/)
    expect(r.out).toMatch(/doctor FAIL credentials: no usable AWS credentials: [^\n{]+\n/)
    // With deadlines long enough that the calls reach the closed port however busy the machine
    // (a CI run once saw every call pass a 1.5 s deadline while the SDK started: no such line).
    r = await provoke('http://127.0.0.1:9', { AWS_ACCESS_KEY_ID: 'AKIATESTONLY' }, 'patient')
    expectClean(r.all)
    // Whichever call reaches the closed port first.
    expect(r.err).toMatch(/(GetObject|PutObject|GetItem\(feed head\)|UpdateItem\(feed head\)): could not reach the endpoint \(.*Connection refused/)
  })

  it('the logger option routes every line into the app\'s logger (nothing on stderr)', async () => {
    // Patient, like the closed-port case: on a busy machine every call could pass its deadline
    // before the first HTTP 500 arrives (seen once in a full run).
    const r = await provoke(`http://127.0.0.1:${s500.address().port}`, { AWS_ACCESS_KEY_ID: 'AKIATESTONLY' }, 'logger', 'patient')
    expectClean(r.all)
    expect(r.out, r.out).toMatch(/APP-LOGGER warn (get failed, serving a miss: \/p: FLEETCACHE_BACKEND: GetObject: HTTP 500|get timed out, serving a miss: \/p)/)
    expect(r.out).toMatch(/APP-LOGGER warn [^\n]*HTTP 500 no error code/)
    expect(r.out).toMatch(/APP-LOGGER warn set refused: set: key must be a string/)
    expect(r.err.split('\n').filter((l) => l.includes('[fleetcache]'))).toEqual([])
  })
})

for (const backend of backends()) {
  describe(`metrics on ${backend.name}`, () => {
    let opts
    let h
    beforeAll(async () => {
      opts = backend.options()
      h = await handlerFor(opts)
    })

    const ctx = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false }
    const families = (text) => {
      // Two readers: ours (strict, histograms included) and an independent one from npm.
      const npm = Object.fromEntries(parsePrometheus(text).map((f) => [f.name, f.type.toLowerCase()]))
      const ours = parseExposition(text)
      expect(npm).toEqual(Object.fromEntries(Object.values(ours).map((f) => [f.name, f.type])))
      return ours
    }
    const value = sampleValue

    it('metrics() is valid Prometheus text whose counters move with the traffic', async () => {
      const before = families(fc.metrics(opts))
      expect(before.fleetcache_gets_total.type).toBe('counter')
      expect(before.fleetcache_memory_bytes.type).toBe('gauge')
      expect(before.fleetcache_feed_lag_seconds.type).toBe('histogram')
      const tag = `m-${backend.name}`
      await h.set('/m', { kind: 'APP_PAGE', html: 'x', rscData: Buffer.from('r'), headers: {}, status: 200 }, { ...ctx, cacheControl: { revalidate: 60 } })
      await h.set('/m2', { kind: 'APP_PAGE', html: 'x', rscData: Buffer.from('r'), headers: { 'x-next-cache-tags': tag }, status: 200 }, { ...ctx, cacheControl: { revalidate: 60 } })
      await h.get('/m', ctx)
      dropMemory(opts)
      await h.get('/m', ctx)
      await h.get('/none', ctx)
      await new Promise((r) => setTimeout(r, 5))
      await h.revalidateTag(tag)
      await h.get('/m2', ctx) // expired by the revalidation: a miss Next renders
      await h.revalidateTag(42).catch(() => {})
      const after = families(fc.metrics(opts))
      const moved = (name, labels) => value(after, name, labels) - (value(before, name, labels) ?? 0)
      expect(moved('fleetcache_gets_total', { result: 'memory_hit' })).toBe(1)
      expect(moved('fleetcache_gets_total', { result: 's3_hit' })).toBe(1)
      expect(moved('fleetcache_gets_total', { result: 'miss' })).toBe(2)
      expect(moved('fleetcache_expired_total')).toBeGreaterThan(0)
      expect(moved('fleetcache_sets_total')).toBe(2)
      expect(moved('fleetcache_invalid_inputs_total')).toBe(1)
      if (backend.name !== 'memory') {
        const ops = after.fleetcache_backend_requests_total.samples.map((m) => `${m.labels.backend} ${m.labels.op} ${m.labels.outcome}`)
        expect(ops).toContain('s3 GetObject ok')
        expect(ops).toContain('s3 PutObject ok')
        expect(value(after, 'fleetcache_backend_request_duration_seconds', { backend: 's3', op: 'PutObject' })).toBeGreaterThan(0)
        expect(value(after, 'fleetcache_breaker_open', { backend: 's3' })).toBe(0)
      }
    })

    it('the OpenTelemetry bridge reports the same counters through the SDK', async () => {
      const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics')
      class Reader extends MetricReader {
        async onForceFlush() {}
        async onShutdown() {}
      }
      const reader = new Reader()
      const provider = new MeterProvider({ readers: [reader] })
      expect(fc.registerOpenTelemetry({ metrics: provider }, opts)).toBe(true)
      await h.get('/m', ctx)
      const { resourceMetrics } = await reader.collect()
      const metrics = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics)
      const gets = metrics.find((m) => m.descriptor.name === 'fleetcache.gets')
      const points = Object.fromEntries(gets.dataPoints.map((p) => [p.attributes.result, p.value]))
      const prom = families(fc.metrics(opts))
      expect(points.memory_hit).toBe(value(prom, 'fleetcache_gets_total', { result: 'memory_hit' }))
      expect(metrics.map((m) => m.descriptor.name)).toContain('fleetcache.feed_lag_seconds.count')
      await provider.shutdown()
    })
  })
}

describe('metrics, process-wide', () => {
  it('without options, every core of the process is reported, labelled by prefix', async () => {
    await handlerFor({ backend: 'memory', prefix: 'pw-a' })
    await handlerFor({ backend: 'memory', prefix: 'pw-b' })
    const fams = parseExposition(fc.metrics())
    const prefixes = new Set(fams.fleetcache_memory_bytes.samples.map((m) => m.labels.prefix))
    expect(prefixes.has('pw-a') && prefixes.has('pw-b')).toBe(true)
    expect(fc.METRICS_CONTENT_TYPE).toBe('text/plain; version=0.0.4; charset=utf-8')
  })

  it('registerOpenTelemetry without @opentelemetry/api resolvable returns false', () => {
    const r = spawnSync(process.execPath, ['-e', `const fc=require(${JSON.stringify(path.join(root, 'index.js'))}); const M=require('node:module'); const orig=M._resolveFilename; M._resolveFilename=function(r,...a){ if(r==='@opentelemetry/api') throw new Error('absent'); return orig.call(this,r,...a) }; console.log(fc.registerOpenTelemetry(undefined,{backend:'memory'}))`], { encoding: 'utf8', env: { PATH: process.env.PATH } })
    expect(r.stdout.trim(), r.stderr).toBe('false')
  })
})
