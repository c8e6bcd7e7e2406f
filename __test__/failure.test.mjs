// get never rejects and set never throws when the backend is down, hung or misconfigured;
// configuration errors name the option.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import net from 'node:net'
import { createRequire } from 'node:module'
import { fc } from './helpers.mjs'

process.env.AWS_ACCESS_KEY_ID ??= 'test'
process.env.AWS_SECRET_ACCESS_KEY ??= 'test'

const PAGE = { kind: 'APP_PAGE', html: '<p>x</p>', rscData: Buffer.from('r'), postponed: undefined, headers: { 'x-next-cache-tags': 't' }, status: undefined, segmentData: undefined }

describe('failures turn into misses', () => {
  let blackHole
  let blackHolePort
  let deadPort
  beforeAll(async () => {
    // accepts connections and never answers: a hung backend
    blackHole = net.createServer(() => {})
    await new Promise((r) => blackHole.listen(0, '127.0.0.1', r))
    blackHolePort = blackHole.address().port
    const tmp = net.createServer()
    await new Promise((r) => tmp.listen(0, '127.0.0.1', r))
    deadPort = tmp.address().port
    await new Promise((r) => tmp.close(r)) // nothing listens here: a down backend
  })
  afterAll(() => blackHole.close())

  it('a down backend: get resolves null, set resolves, errors are counted', async () => {
    const ep = `http://127.0.0.1:${deadPort}`
    const opts = { bucket: 'down-bucket', table: 'down-table', s3Endpoint: ep, dynamodbEndpoint: ep, region: 'us-east-1', getTimeoutMs: 3000 }
    const H = fc.createCacheHandler(opts)
    const h = new H({})
    await expect(h.get('/x', { kind: 'APP_PAGE' })).resolves.toBeNull()
    const first = fc.stats(opts)
    expect(first.getErrors + first.getTimeouts, 'the get that met the down backend, counted once').toBe(1)
    await expect(h.set('/x', PAGE, { kind: 'APP_PAGE', cacheControl: { revalidate: 60 } })).resolves.toBeUndefined()
    // the value set on this instance is still served from its memory while S3 is down
    const got = await h.get('/x', { kind: 'APP_PAGE' })
    expect(got && got.value.html).toBe('<p>x</p>')
    // A revalidation is queued, honoured here at once, and retried until DynamoDB takes it.
    await expect(h.revalidateTag(['t'])).resolves.toBeUndefined()
    expect(await h.get('/x', { kind: 'APP_PAGE' })).toBeNull()
    const s = fc.stats(opts)
    expect(s.revalidationsQueued).toBe(1)
    // The set's upload is queued too: retried until S3 takes it.
    expect(s.uploadsQueued).toBe(1)
    expect(s.queuedUploadBytes).toBeGreaterThan(0)
    expect(s.outboxDepth).toBe(2)
    expect(s.setErrors).toBe(1)
  })

  it('a hung backend: get resolves null by the deadline', async () => {
    const ep = `http://127.0.0.1:${blackHolePort}`
    const opts = { bucket: 'hung-bucket', table: 'hung-table', s3Endpoint: ep, dynamodbEndpoint: ep, region: 'us-east-1', getTimeoutMs: 300 }
    const h = new (fc.createCacheHandler(opts))({})
    const started = Date.now()
    await expect(h.get('/y', { kind: 'APP_PAGE' })).resolves.toBeNull()
    expect(Date.now() - started).toBeLessThan(10_000) // bounded (the deadline is 300 ms; generous for noisy machines)
    expect(fc.stats(opts).getTimeouts).toBe(1)
  })

  it('invalid configuration fails at construction, naming the option', () => {
    const cases = [
      [{ bucket: 'b-ok', backend: 'aws' }, /`table`/],
      [{ backend: 'memory', memoryBytes: -5 }, /memoryBytes/],
      [{ backend: 'memory', getTimeoutMs: '100' }, /getTimeoutMs/],
      [{ backend: 'memory', bukket: 'x' }, /unknown option `bukket`/],
      [{ backend: 'memory', bucektName: 'x' }, /unknown option `bucektName`: did you mean `bucket`\?/],
      [{ backend: 'memory', forcePathStyle: 'yes' }, /`forcePathStyle` must be a boolean, got string/],
      [{ backend: 'nope' }, /backend/],
      [{ backend: 'memory', s3Endpoint: 'localhost:1' }, /s3Endpoint/],
      ['bucket', /options must be an object/],
    ]
    const saved = { b: process.env.FLEETCACHE_BUCKET, t: process.env.FLEETCACHE_TABLE }
    delete process.env.FLEETCACHE_TABLE
    try {
      for (const [opts, re] of cases) {
        let err
        try {
          fc.createCacheHandler(opts)
        } catch (e) {
          err = e
        }
        expect(err, JSON.stringify(opts)).toBeInstanceOf(fc.FleetCacheError)
        expect(err.code).toBe('FLEETCACHE_CONFIG')
        expect(err.message).toMatch(re)
      }
    } finally {
      if (saved.t !== undefined) process.env.FLEETCACHE_TABLE = saved.t
    }
  })

  it('native errors carry the core\'s code and message as they are (nothing parsed)', async () => {
    const binding = createRequire(import.meta.url)('../binding.js')
    let err
    try {
      new binding.NativeCache({ backend: 'memory', memoryBytes: -1 })
    } catch (e) {
      err = e
    }
    expect(err.code).toBe('FLEETCACHE_CONFIG')
    expect(err.message).toMatch(/^memoryBytes must be a whole number/)
    const refused = `http://127.0.0.1:${deadPort}`
    const core = new binding.NativeCache({ bucket: 'refused-bucket', table: 'refused-table', s3Endpoint: refused, dynamodbEndpoint: refused, region: 'us-east-1', feedIntervalMs: 0 })
    const rejected = await core.listBuilds().then(() => undefined, (e) => e)
    expect(rejected.code).toBe('FLEETCACHE_BACKEND')
    expect(rejected.message).not.toMatch(/^FLEETCACHE_/)
    const wrapped = await fc.pathsForTags(['t'], { bucket: 'refused-bucket', table: 'refused-table', s3Endpoint: refused, dynamodbEndpoint: refused, region: 'us-east-1', feedIntervalMs: 0 }).then(() => undefined, (e) => e)
    expect(wrapped).toBeInstanceOf(fc.FleetCacheError)
    expect(wrapped.code).toBe('FLEETCACHE_BACKEND')
  })

  it('constructing the handler is cheap, shares one core, and adopts Next\'s BUILD_ID', async () => {
    const fs = await import('node:fs')
    const os = await import('node:os')
    const path = await import('node:path')
    const dist = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-dist-'))
    fs.mkdirSync(path.join(dist, 'server'))
    fs.writeFileSync(path.join(dist, 'BUILD_ID'), 'build-xyz\n')
    const H = fc.createCacheHandler({ backend: 'memory', prefix: 'share' })
    const a = new H({})
    const b = new H({ serverDistDir: path.join(dist, 'server') })
    const c = new H({ serverDistDir: undefined })
    expect(a.core).toBe(b.core)
    expect(b.core).toBe(c.core)
    expect(a.core.buildId).toBe('build-xyz')
    expect(a.core.objectKey('/isr', 'APP_PAGE')).toContain('/routes/build-xyz/')
    // a configured buildId wins
    const H2 = new (fc.createCacheHandler({ backend: 'memory', prefix: 'share2', buildId: 'mine' }))({ serverDistDir: path.join(dist, 'server') })
    expect(H2.core.buildId).toBe('mine')
  })

  it('oversized entries are refused, counted, and do not throw', async () => {
    const opts = { backend: 'memory', prefix: 'big', maxEntryBytes: 10_000 }
    const h = new (fc.createCacheHandler(opts))({})
    await expect(h.set('/big', { ...PAGE, html: 'x'.repeat(50_000) }, { kind: 'APP_PAGE', cacheControl: { revalidate: 1 } })).resolves.toBeUndefined()
    expect(fc.stats(opts).tooLarge).toBe(1)
    expect(await h.get('/big', { kind: 'APP_PAGE' })).toBeNull()
  })
})
