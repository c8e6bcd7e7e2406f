// Input from JS that is not what Next sends: every method refuses it with
// FLEETCACHE_INVALID_INPUT (get: a counted miss), durations are checked and clamped, keys and
// tags reach the store losslessly, and two apps sharing one table stay apart.
import { describe, it, expect, beforeAll } from 'vitest'
import { backends, handlerFor, dropMemory, fc, sleep } from './helpers.mjs'

process.env.AWS_ACCESS_KEY_ID ??= 'test'
process.env.AWS_SECRET_ACCESS_KEY ??= 'test'

const CTX = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false }
const page = (html, tags = 'posts') => ({ kind: 'APP_PAGE', html, rscData: Buffer.from('rsc'), headers: { 'x-next-cache-tags': tags }, status: 200 })
const setCtx = (cacheControl) => ({ ...CTX, cacheControl })

for (const backend of backends()) {
  describe(`input on ${backend.name}`, () => {
    let opts
    let h
    beforeAll(async () => {
      opts = backend.options()
      h = await handlerFor(opts)
    })

    it('revalidateTag refuses tags that are not strings, and durations that are not durations', async () => {
      const before = fc.stats(opts).invalidInputs
      for (const tags of [undefined, null, 123, {}, [1, 2], ['ok', null], '', ['']]) {
        await expect(h.revalidateTag(tags), JSON.stringify(tags)).rejects.toMatchObject({ code: 'FLEETCACHE_INVALID_INPUT' })
      }
      for (const expire of [NaN, -1, '5']) {
        await expect(h.revalidateTag('posts', { expire }), String(expire)).rejects.toMatchObject({ code: 'FLEETCACHE_INVALID_INPUT' })
      }
      await expect(h.revalidateTag('posts', 'max')).rejects.toMatchObject({ code: 'FLEETCACHE_INVALID_INPUT' })
      expect(fc.stats(opts).invalidInputs - before, 'every refusal is counted').toBe(12)
    })

    it("{ expire: Infinity | 1e300 } is 'max'-sized: stale now, served stale, never an error", async () => {
      for (const [i, expire] of [Infinity, 1e300].entries()) {
        const key = `/max-${i}`
        const tag = `max-${i}-${backend.name}`
        await h.set(key, page('v1', tag), setCtx({ revalidate: 3600, expire: 7200 }))
        const fresh = await h.get(key, CTX)
        await sleep(5) // a revalidation in the very millisecond of the write does not predate it
        await h.revalidateTag(tag, { expire })
        const got = await h.get(key, CTX)
        expect(got.value.html).toBe('v1')
        expect(got.lastModified, 'served stale: lastModified moved back').toBeLessThan(fresh.lastModified)
      }
    })

    it('cacheControl durations: NaN and negatives are refused, Infinity clamps to forever', async () => {
      for (const revalidate of [NaN, -5]) {
        await expect(h.set('/cc-bad', page('x'), setCtx({ revalidate })), String(revalidate)).rejects.toMatchObject({ code: 'FLEETCACHE_INVALID_INPUT' })
      }
      await expect(h.set('/cc-bad', page('x'), setCtx({ revalidate: 60, expire: -1 }))).rejects.toMatchObject({ code: 'FLEETCACHE_INVALID_INPUT' })
      expect(await h.get('/cc-bad', CTX)).toBeNull()
      await h.set('/cc-inf', page('x'), setCtx({ revalidate: Infinity, expire: 1e300 }))
      dropMemory(opts)
      const got = await h.get('/cc-inf', CTX)
      expect(got.cacheControl).toEqual({ revalidate: 4294967294, expire: 4294967294 })
    })

    it('keys with lone surrogates are distinct entries, in memory and in the store', async () => {
      const keys = ['/a\uD800b', '/a\uDBFFb', '/a\uFFFDb', '/a\uFFFFb', '/a\uFFFFd800b', '/a\uD83D\uDE00b']
      for (const k of keys) await h.set(k, page(`for ${escape(k)}`), setCtx({ revalidate: 60 }))
      for (const read of ['memory', 'store']) {
        if (read === 'store') dropMemory(opts)
        for (const k of keys) expect((await h.get(k, CTX)).value.html, `${read}: ${escape(k)}`).toBe(`for ${escape(k)}`)
      }
    })

    it('a tag longer than DynamoDB allows in a key is stored by hash and revalidates', async () => {
      const long = `t-${backend.name}-${'x'.repeat(3000)}`
      await h.set('/long-tag', page('v1', long), setCtx({ revalidate: 3600 }))
      expect(fc.stats(opts).indexErrors).toBe(0)
      expect(await fc.pathsForTags([long], opts)).toEqual(['/long-tag'])
      await h.revalidateTag(long)
      dropMemory(opts)
      expect(await h.get('/long-tag', CTX)).toBeNull()
    })

    it('issue 26, smaller items: each refused with a coded error, or a no-op as on Next', async () => {
      // revalidateTag([]): Next's built-in loops over no tags; so does fleetcache, writing nothing.
      const before = fc.stats(opts)
      await expect(h.revalidateTag([])).resolves.toBeUndefined()
      expect(fc.stats(opts).outboxDepth).toBe(0)
      expect(fc.stats(opts).revalidations).toBe(before.revalidations)
      // A FETCH value's revalidate of NaN (or below 0) is not a duration.
      const FETCH_CTX = { kind: 'FETCH', fetchCache: true, tags: [] }
      const fetchValue = (revalidate) => ({ kind: 'FETCH', data: { headers: {}, body: 'b', status: 200, url: 'http://x' }, revalidate, tags: [] })
      for (const r of [NaN, -1]) {
        await expect(h.set('f-nan', fetchValue(r), FETCH_CTX), String(r)).rejects.toMatchObject({ code: 'FLEETCACHE_INVALID_INPUT', message: expect.stringContaining('FETCH revalidate') })
      }
      // Header values JSON would drop or mangle without a word; Node's string[] stays valid.
      for (const [v, what] of [[Symbol('s'), 'symbol'], [{ a: 1 }, 'object'], [[1, 2], 'array holding'], [() => 1, 'function']]) {
        await expect(h.set('/hdr', { ...page('x'), headers: { 'x-bad': v } }, setCtx({ revalidate: 60 })), what).rejects.toMatchObject({ code: 'FLEETCACHE_INVALID_INPUT', message: expect.stringContaining('headers["x-bad"]') })
      }
      await h.set('/hdr', { ...page('x'), headers: { 'set-cookie': ['a=1', 'b=2'], 'x-n': 5 } }, setCtx({ revalidate: 60 }))
      expect((await h.get('/hdr', CTX)).value.headers).toEqual({ 'set-cookie': ['a=1', 'b=2'], 'x-n': 5 })
      // The handler's constructor takes Next's context object.
      const H = fc.createCacheHandler(opts)
      expect(() => new H(5)).toThrow(expect.objectContaining({ code: 'FLEETCACHE_INVALID_INPUT' }))
      expect(() => new H(undefined)).not.toThrow()
      // registerOpenTelemetry with something that is not the API.
      for (const api of [5, null, {}, { metrics: {} }]) {
        expect(() => fc.registerOpenTelemetry(api, opts), JSON.stringify(api)).toThrow(expect.objectContaining({ code: 'FLEETCACHE_INVALID_INPUT' }))
      }
      // A page entry and a fetch entry under the same key string never read each other.
      await h.set('/same-key', page('the page'), setCtx({ revalidate: 60 }))
      await h.set('/same-key', fetchValue(60), FETCH_CTX)
      for (const read of ['memory', 'store']) {
        if (read === 'store') dropMemory(opts)
        expect((await h.get('/same-key', CTX)).value.html, read).toBe('the page')
        expect((await h.get('/same-key', FETCH_CTX)).value.data.body, read).toBe('b')
      }
    })

    it("useCache.set with an entry that is not one is refused by name, logged and counted", async () => {
      const uc = fc.createUseCacheHandler(opts)
      const before = fc.stats(opts).invalidInputs
      await uc.set('["k"]', Promise.resolve(5))
      await uc.set('["k"]', Promise.resolve({ value: 5 }))
      expect(fc.stats(opts).invalidInputs - before).toBe(2)
      expect(await uc.get('["k"]', [])).toBeUndefined()
    })

    it('options that would silently mean something else are refused', () => {
      for (const prefix of ['', 'a#b', 'a b', 'a\0b']) {
        expect(() => fc.createCacheHandler({ backend: 'memory', prefix }), JSON.stringify(prefix)).toThrow(/`prefix`/)
      }
      expect(() => fc.createCacheHandler({ backend: 'memory', buildId: 'a/b' })).toThrow(/`buildId`/)
      expect(() => fc.createCacheHandler({ backend: 'memory', logger: 'console' })).toThrow(/`logger`/)
      expect(() => fc.createCacheHandler({ backend: 'memory', backend2: 1 })).toThrow(/did you mean `backend`/)
    })
  })
}

describe('two apps on one table', () => {
  const aws = backends().find((b) => b.name === 's3+dynamodb')
  it.skipIf(!aws)('under different prefixes, neither expires, lists or drops the other\'s entries', async () => {
    const a = aws.options()
    const b = { ...aws.options(), prefix: `${a.prefix}-other` }
    const ha = await handlerFor(a)
    const hb = await handlerFor(b)
    await ha.set('/shared', page('app a', 'shared-tag'), setCtx({ revalidate: 3600 }))
    await hb.set('/shared', page('app b', 'shared-tag'), setCtx({ revalidate: 3600 }))
    expect(await fc.pathsForTags(['shared-tag'], b)).toEqual(['/shared'])
    await ha.revalidateTag('shared-tag')
    expect(await ha.get('/shared', CTX)).toBeNull()
    for (const drop of [false, true]) {
      if (drop) dropMemory(b)
      expect((await hb.get('/shared', CTX)).value.html).toBe('app b')
    }
    const fresh = await handlerFor({ ...b, feedIntervalMs: 50 })
    expect((await fresh.get('/shared', CTX)).value.html).toBe('app b')
  })
})
