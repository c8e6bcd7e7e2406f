// CDN purging through the JS face: CloudFront on the local moto server (CreateInvalidation,
// ListInvalidations), and the `cdn.purge` hook on memory. The planner's rules are pinned by
// `cargo test` (src/cdn/); here: who sends, what, and the options.
import { describe, it, expect } from 'vitest'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { fc, handlerFor, waitFor } from './helpers.mjs'
import { venvPython } from '../scripts/local-aws.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const ep = process.env.FLEETCACHE_TEST_ENDPOINT
const run = `${process.pid.toString(36)}${Date.now().toString(36)}`
const ctx = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false }
const page = (html) => ({ kind: 'APP_PAGE', html, rscData: Buffer.from('rsc'), headers: {}, status: 200, postponed: undefined, segmentData: undefined })

function cloudfront(...args) {
  const r = spawnSync(venvPython, [path.join(root, '__test__', 'fixtures', 'cloudfront.py'), ...args], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(r.stderr)
  return r.stdout.trim()
}

describe('cdn options', () => {
  it('are checked like the others, naming the option', () => {
    expect(() => fc.createCacheHandler({ backend: 'memory', cdn: { cloudfront: { distributionId: 'not an id' } } })).toThrow(/`cdn.cloudfront.distributionId` "not an id" is not a CloudFront distribution ID/)
    expect(() => fc.createCacheHandler({ backend: 'memory', cdn: { windowMs: -1 } })).toThrow(/cdn\.windowMs/)
    expect(() => fc.createCacheHandler({ backend: 'memory', cdn: { rscVariants: 'cookies' } })).toThrow(/`cdn.rscVariants` must be "query" or "headers"/)
    expect(() => fc.createCacheHandler({ backend: 'memory', cdn: { windwMs: 5 } })).toThrow(/unknown option `cdn.windwMs`: did you mean `cdn.windowMs`\?/)
    expect(() => fc.createCacheHandler({ backend: 'memory', cdn: { purge: 'https://purge' } })).toThrow(/`cdn.purge` must be a function, got string/)
  })
})

describe('the cdn.purge hook (memory backend)', () => {
  it('receives one batch with the page and its RSC variant from the instance that revalidated', async () => {
    const batches = []
    const opts = { backend: 'memory', prefix: `hook${run}`, cdn: { windowMs: 0, purge: async (b) => { batches.push(b) } } }
    const h = await handlerFor(opts)
    await h.set('/blog/a', page('a'), { ...ctx, cacheControl: { revalidate: 3600, expire: undefined }, tags: ['posts'] })
    await h.revalidateTag('posts')
    const got = await waitFor('the purge hook called', () => batches.length >= 1 && batches)
    expect(got).toEqual([{ paths: ['/blog/a', '/blog/a?_rsc=*'], files: 1, wildcards: 1, cost: 0, widened: false }])
    const stats = fc.stats(opts)
    expect(stats.cdnBatches).toBe(1)
    expect(stats.cdnPathsSent).toBe(2)
    expect(fc.metrics(opts)).toMatch(/^fleetcache_cdn_paths_total\{fate="sent"\} 2$/m)
  })
})

describe.skipIf(!ep)('CloudFront (local moto server)', () => {
  it('revalidateTag on instance 1 sends exactly one invalidation, from instance 1, with the pages and their RSC variants', async () => {
    const distributionId = cloudfront('create', ep)
    const store = { bucket: `cdn-${run}`.toLowerCase(), table: `cdn-${run}`, s3Endpoint: ep, dynamodbEndpoint: ep, region: 'us-east-1' }
    const cdn = { cloudfront: { distributionId, endpoint: ep }, windowMs: 100 }
    const one = { ...store, prefix: 'cdn', cdn }
    // Instance 2: the same app in another process, as far as the cores go (its own feed).
    const two = { ...store, prefix: 'cdn', cdn, feedIntervalMs: 100 }
    const h1 = await handlerFor(one)
    const h2 = await handlerFor(two)
    for (const p of ['/blog/a', '/blog/b']) {
      await h2.set(p, page(p), { ...ctx, cacheControl: { revalidate: 3600, expire: undefined }, tags: ['posts'] })
    }
    await h1.revalidateTag('posts')
    const sent = await waitFor('an invalidation listed', () => {
      const list = JSON.parse(cloudfront('list', ep, distributionId))
      return list.length >= 1 && list
    })
    // Instance 2 applies the revalidation from the feed; a purge of its own would follow from that.
    await waitFor('instance 2 applied the revalidation', async () => (await h2.get('/blog/a', ctx)) === null)
    const list = JSON.parse(cloudfront('list', ep, distributionId))
    expect(list).toHaveLength(1)
    expect(list[0].paths.sort()).toEqual(['/blog/a', '/blog/a?_rsc=*', '/blog/b', '/blog/b?_rsc=*'])
    expect(list[0].callerReference).toMatch(/^fleetcache-/)
    expect(sent[0].status).toBe('COMPLETED')
    expect(fc.stats(one).cdnBatches).toBe(1)
    expect(fc.stats(two).cdnBatches).toBe(0)
    // The month's count is the fleet's, in the table.
    expect(fc.stats(one).cdnPathsThisMonth).toBe(4)
  })

  it('a receipt carries the purge: the paths planned and the CloudFront invalidation that sent them', async () => {
    const distributionId = cloudfront('create', ep)
    const store = { bucket: `cdnr-${run}`.toLowerCase(), table: `cdnr-${run}`, s3Endpoint: ep, dynamodbEndpoint: ep, region: 'us-east-1' }
    const one = { ...store, prefix: 'cdnr', cdn: { cloudfront: { distributionId, endpoint: ep }, windowMs: 100 } }
    const h = await handlerFor(one)
    await h.set('/news/a', page('a'), { ...ctx, cacheControl: { revalidate: 3600, expire: undefined }, tags: ['news'] })
    const r = await fc.revalidate({ tags: ['news'], wait: true, timeoutMs: 5_000 }, one)
    expect(r.missing).toEqual([])
    const list = JSON.parse(cloudfront('list', ep, distributionId))
    expect(list).toHaveLength(1)
    expect(r.cdn).toEqual({ planned: ['/news/a', '/news/a?_rsc=*'], sent: true, invalidationIds: [list[0].id] })
    // Without a CDN, no cdn part.
    const plain = await fc.revalidate({ tags: ['news'], wait: true, timeoutMs: 2_000 }, { ...store, prefix: 'cdnr' })
    expect(plain.cdn).toBeUndefined()
  })

  it('doctor checks the distribution answers', async () => {
    const distributionId = cloudfront('create', ep)
    const tools = await import('../tools/index.js')
    const store = { bucket: `cdn-${run}`.toLowerCase(), table: `cdn-${run}`, s3Endpoint: ep, dynamodbEndpoint: ep, region: 'us-east-1', prefix: 'cdn-doctor' }
    const checks = await tools.doctor({ ...store, cdn: { cloudfront: { distributionId, endpoint: ep } } })
    expect(checks.find((c) => c.name === 'cloudfront:ListInvalidations')).toMatchObject({ ok: true })
    // (moto lists an unknown distribution's invalidations as empty, where CloudFront answers
    // NoSuchDistribution, which doctor reports as "does not exist": not checkable here.)
    // Without the option, no CloudFront check.
    expect((await tools.doctor(store)).some((c) => c.name.startsWith('cloudfront'))).toBe(false)
  })

  it('fleetcache purge --dry-run prints the plan; without it, sends it', async () => {
    const distributionId = cloudfront('create', ep)
    const tools = await import('../tools/index.js')
    const options = { bucket: `cdn-${run}`.toLowerCase(), table: `cdn-${run}`, s3Endpoint: ep, dynamodbEndpoint: ep, region: 'us-east-1', prefix: 'cdn-cli', cdn: { cloudfront: { endpoint: ep } } }
    const dry = await tools.purge({ paths: ['/docs', '/shop/*'], dryRun: true, distributionId }, options)
    expect(dry.sent).toBe(false)
    expect(dry.batches.map((b) => b.paths)).toEqual([['/docs', '/docs?_rsc=*', '/shop/*']])
    expect(JSON.parse(cloudfront('list', ep, distributionId))).toEqual([])
    const real = await tools.purge({ paths: ['/docs'], distributionId }, options)
    expect(real.batches[0].error).toBeUndefined()
    expect(JSON.parse(cloudfront('list', ep, distributionId)).map((i) => i.paths.sort())).toEqual([['/docs', '/docs?_rsc=*']])
  })
})
