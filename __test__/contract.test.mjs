// The cache-handler contract (docs: ../shared/reference/next-cache-contract.md), against the
// memory backend and against real S3 + DynamoDB protocol servers. Every read is checked twice:
// from the in-memory tier, and from the shared store after the tier is dropped.
import { describe, it, expect, beforeAll } from 'vitest'
import { backends, handlerFor, dropMemory, fc, sleep } from './helpers.mjs'

process.env.AWS_ACCESS_KEY_ID ??= 'test'
process.env.AWS_SECRET_ACCESS_KEY ??= 'test'

const ROUTE_KEY = (page, path) => `/route-cache/APP_PAGE/${'c3'.repeat(32)}/$${path}`

function appPage(extra = {}) {
  const rsc = Buffer.from('0:"$@1"\n1:{"label":"a"}\n'.repeat(50))
  return {
    kind: 'APP_PAGE',
    html: '<!DOCTYPE html><html><body>héllo ✓</body></html>'.repeat(20),
    rscData: rsc,
    postponed: undefined,
    headers: { 'x-nextjs-stale-time': '300', 'x-next-cache-tags': '_N_T_/layout,_N_T_/isr/page,_N_T_/isr,posts' },
    status: undefined,
    segmentData: new Map([
      ['/_tree', Buffer.from([1, 2, 3, 250])],
      ['/_full', rsc],
      ['/isr/__PAGE__', Buffer.from('page segment')],
    ]),
    ...extra,
  }
}

const PAGE_CTX = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false }
const setCtx = (cacheControl, kind = 'APP_PAGE') => ({ kind, isRoutePPREnabled: false, isFallback: false, cacheControl })

for (const backend of backends()) {
  describe(`contract on ${backend.name}`, () => {
    let opts
    let h
    beforeAll(async () => {
      opts = backend.options()
      h = await handlerFor(opts)
    })

    /**
     * get three times: from memory (the value built from the native copy), from memory again (the
     * value JS kept for that copy's generation), then from the shared store.
     */
    async function getBoth(key, ctx) {
      const fromMemory = await h.get(key, ctx)
      const again = await h.get(key, ctx)
      dropMemory(opts)
      const fromStore = await h.get(key, ctx)
      return [fromMemory, again, fromStore]
    }

    it('APP_PAGE round-trips with exact JS types', async () => {
      const key = ROUTE_KEY('/isr/page', '/isr')
      const value = appPage()
      await h.set(key, value, setCtx({ revalidate: 5, expire: 31536000 }))
      for (const got of await getBoth(key, PAGE_CTX)) {
        expect(got.value).toEqual(value)
        const v = got.value
        expect(typeof v.html).toBe('string')
        expect(Buffer.isBuffer(v.rscData)).toBe(true)
        expect(v.segmentData).toBeInstanceOf(Map)
        for (const b of v.segmentData.values()) expect(Buffer.isBuffer(b)).toBe(true)
        expect([...v.segmentData.keys()]).toEqual(['/_tree', '/_full', '/isr/__PAGE__'])
        expect(v.segmentData.get('/_full').equals(value.rscData)).toBe(true)
        expect('status' in v && v.status === undefined).toBe(true)
        expect(v.postponed).toBeUndefined()
        expect(got.cacheControl).toEqual({ revalidate: 5, expire: 31536000 })
        expect(got.lastModified).toBeGreaterThan(Date.now() - 60_000)
      }
    })

    it('a repeated memory hit hands Next the value it got before; a rewrite hands the new one; a revalidated entry is a miss', async () => {
      const key = ROUTE_KEY('/repeat', '/repeat')
      // The first gets after a set may take the async path (tag states not known here yet),
      // which keeps nothing; from the first memory hit on, a hit repeats the value.
      const settled = async () => {
        let prev = await h.get(key, PAGE_CTX)
        for (let i = 0; i < 10; i++) {
          const got = await h.get(key, PAGE_CTX)
          if (got.value === prev.value) return [prev, got]
          prev = got
        }
        throw new Error('no two hits in a row handed the same value')
      }
      await h.set(key, appPage(), setCtx({ revalidate: 60 }))
      const [first, second] = await settled()
      expect(second).not.toBe(first)
      expect(second.value).toEqual(appPage())
      expect(second.cacheControl).toEqual({ revalidate: 60 })
      expect(second.lastModified).toBe(first.lastModified)
      await h.set(key, appPage({ html: '<p>two</p>' }), setCtx({ revalidate: 60 }))
      const [third] = await settled()
      expect(third.value.html).toBe('<p>two</p>')
      await h.revalidateTag('posts')
      expect(await h.get(key, PAGE_CTX)).toBeNull()
    })

    it('APP_PAGE under PPR (postponed string, status, no segments) round-trips', async () => {
      const value = appPage({ postponed: JSON.stringify({ t: 1, p: 'x'.repeat(2000) }), status: 404, segmentData: undefined, rscData: undefined })
      await h.set('/ppr', value, setCtx({ revalidate: false }))
      for (const got of await getBoth('/ppr', PAGE_CTX)) {
        expect(got.value).toEqual(value)
        expect(got.value.rscData).toBeUndefined()
        expect(got.value.segmentData).toBeUndefined()
        expect(got.cacheControl).toEqual({ revalidate: false })
        expect('expire' in got.cacheControl).toBe(false)
      }
    })

    it('APP_ROUTE, PAGES, REDIRECT, notFound and IMAGE round-trip', async () => {
      const cases = [
        ['/route-cache/APP_ROUTE/aa/$/api/cached', 'APP_ROUTE', { kind: 'APP_ROUTE', body: Buffer.from([0, 255, 1, 128]), status: 200, headers: { 'content-type': 'application/json', 'x-custom': '1', 'x-next-cache-tags': 'r' } }],
        ['/route-cache/PAGES/491f/$/ssg', 'PAGES', { kind: 'PAGES', html: '<p>ssg</p>', pageData: { pageProps: { n: 1, s: 'é' }, __N_SSG: true }, headers: undefined, status: undefined }],
        ['/redir/x', 'PAGES', { kind: 'REDIRECT', props: { pageProps: { __N_REDIRECT: '/ssg?from=x', __N_REDIRECT_STATUS: 307 }, __N_SSG: true } }],
        ['/nf', 'PAGES', null],
        ['hfPrrD-XZnRUIVfVAOEhLAFgqGgvuG8MpUd5gEXPWxI', 'IMAGE', { kind: 'IMAGE', buffer: Buffer.from([0x52, 0x49, 0x46, 0x46, 0, 0xff, 0x80]), etag: 'e1', upstreamEtag: 'u1', extension: 'webp', revalidate: 14400 }],
      ]
      for (const [key, kind, value] of cases) {
        await h.set(key, value, setCtx({ revalidate: 60 }, kind))
        for (const got of await getBoth(key, { kind, isFallback: false })) {
          expect(got, key).not.toBeNull()
          expect(got.value, key).toEqual(value)
          if (value === null) expect(got.value).toBeNull()
          if (kind === 'APP_ROUTE') expect(Buffer.isBuffer(got.value.body)).toBe(true)
          if (kind === 'IMAGE') expect(Buffer.isBuffer(got.value.buffer)).toBe(true)
          if (value && value.kind === 'PAGES') {
            expect('headers' in got.value && got.value.headers === undefined).toBe(true)
          }
        }
      }
    })

    it('FETCH (fetch and unstable_cache bodies, tags) round-trips', async () => {
      const fetchValue = {
        kind: 'FETCH',
        data: { headers: { 'content-type': 'application/json', etag: 'W/"1"' }, body: Buffer.from('{"a":1}').toString('base64'), status: 200, url: 'https://api.example.com/posts' },
        revalidate: 60,
        tags: ['posts'],
      }
      const ucValue = { kind: 'FETCH', data: { headers: {}, body: JSON.stringify({ r: [1, 2] }), status: 200, url: '' }, revalidate: 30 }
      const k1 = 'a'.repeat(64)
      const k2 = 'b'.repeat(64)
      await h.set(k1, fetchValue, { fetchCache: true, fetchUrl: fetchValue.data.url, fetchIdx: 1, tags: ['posts'], isImplicitBuildTimeCache: false })
      await h.set(k2, ucValue, { fetchCache: true, fetchUrl: 'unstable_cache /p k', fetchIdx: 0, tags: [], isImplicitBuildTimeCache: false })
      const getCtx = (tags) => ({ kind: 'FETCH', revalidate: 60, fetchUrl: 'x', fetchIdx: 1, tags, softTags: ['_N_T_/layout', '_N_T_/p'] })
      for (const got of await getBoth(k1, getCtx(['posts']))) {
        expect(got.value).toEqual(fetchValue)
        expect(got.cacheControl).toBeUndefined()
      }
      for (const got of await getBoth(k2, getCtx([]))) {
        expect(got.value).toEqual(ucValue)
        expect('tags' in got.value).toBe(false)
      }
    })

    it('tags come from ctx.tags, ctx.softTags and x-next-cache-tags', async () => {
      const u = Math.random().toString(36).slice(2)
      const fromHeader = `/hdr-${u}`
      await h.set(fromHeader, appPage({ headers: { 'x-next-cache-tags': `h-${u},_N_T_/x` } }), setCtx({ revalidate: 60 }))
      const fetchKey = `c${u}`.padEnd(64, '0')
      const fv = { kind: 'FETCH', data: { headers: {}, body: 'e30=', status: 200, url: 'u' }, revalidate: 60 }
      await h.set(fetchKey, fv, { fetchCache: true, tags: [`ct-${u}`] })
      const softKey = `d${u}`.padEnd(64, '0')
      await h.set(softKey, fv, { fetchCache: true, tags: [], softTags: [`st-${u}`] })
      const fctx = { kind: 'FETCH', revalidate: 60, tags: [], softTags: [] }
      await sleep(5) // a revalidation in the same millisecond as a write leaves the write fresh

      await h.revalidateTag([`h-${u}`])
      expect(await h.get(fromHeader, PAGE_CTX)).toBeNull()
      await h.revalidateTag(`ct-${u}`) // a plain string works too
      expect(await h.get(fetchKey, fctx)).toBeNull()
      expect(await h.get(softKey, fctx)).not.toBeNull()
      await h.revalidateTag([`st-${u}`])
      expect(await h.get(softKey, fctx)).toBeNull()

      // get-time soft tags (implicit page tags) also invalidate a fetch entry
      const k3 = `e${u}`.padEnd(64, '0')
      await h.set(k3, fv, { fetchCache: true, tags: [] })
      await sleep(5)
      await h.revalidateTag([`_N_T_/page-${u}`])
      expect(await h.get(k3, { ...fctx, softTags: [`_N_T_/page-${u}`] })).toBeNull()
      expect(await h.get(k3, { ...fctx, softTags: ['_N_T_/other'] })).not.toBeNull()
    })

    it('revalidateTag: undefined and {expire: 0} expire now, on every read path', async () => {
      for (const durations of [undefined, { expire: 0 }]) {
        const tag = `t-${Math.random().toString(36).slice(2)}`
        const key = `/exp-${tag}`
        await h.set(key, appPage({ headers: { 'x-next-cache-tags': tag } }), setCtx({ revalidate: 60 }))
        await new Promise((r) => setTimeout(r, 5))
        await h.revalidateTag([tag], durations)
        expect(await h.get(key, PAGE_CTX)).toBeNull()
        dropMemory(opts)
        expect(await h.get(key, PAGE_CTX)).toBeNull()
        // a rewrite after the revalidation is fresh
        await new Promise((r) => setTimeout(r, 5))
        await h.set(key, appPage({ headers: { 'x-next-cache-tags': tag } }), setCtx({ revalidate: 60 }))
        expect(await h.get(key, PAGE_CTX)).not.toBeNull()
      }
    })

    it('a render that follows a revalidation is fresh (set after get → null)', async () => {
      const tag = `r-${Math.random().toString(36).slice(2)}`
      const key = `/rerender-${tag}`
      const value = appPage({ headers: { 'x-next-cache-tags': tag } })
      await h.get(key, PAGE_CTX)
      await h.set(key, value, setCtx({ revalidate: 60 }))
      expect(await h.get(key, PAGE_CTX)).not.toBeNull() // now in memory
      await sleep(5)
      await h.revalidateTag([tag])
      await sleep(5)
      expect(await h.get(key, PAGE_CTX)).toBeNull() // Next renders now
      await h.set(key, value, setCtx({ revalidate: 60 }))
      expect(await h.get(key, PAGE_CTX)).not.toBeNull()
    })

    it('revalidateTag with {expire: N} serves the entry stale: lastModified moved back, never 0, never past expire', async () => {
      const tag = `s-${Math.random().toString(36).slice(2)}`
      const key = `/stale-${tag}`
      await h.set(key, appPage({ headers: { 'x-next-cache-tags': tag } }), setCtx({ revalidate: 30, expire: 31536000 }))
      const before = await h.get(key, PAGE_CTX)
      await new Promise((r) => setTimeout(r, 5))
      await h.revalidateTag([tag], { expire: 31536000 })
      for (const got of await getBoth(key, PAGE_CTX)) {
        const now = Date.now()
        expect(got).not.toBeNull()
        expect(got.value.html).toBe(before.value.html)
        expect(got.lastModified).toBeGreaterThan(0)
        expect(got.lastModified + 30 * 1000).toBeLessThan(now) // Next: stale
        expect(got.lastModified + 31536000 * 1000).toBeGreaterThanOrEqual(now) // not blocking
      }
      // FETCH: ctx.revalidate decides
      const fk = `f${tag}`.padEnd(64, '0').slice(0, 64)
      await h.set(fk, { kind: 'FETCH', data: { headers: {}, body: 'e30=', status: 200, url: 'u' }, revalidate: 60, tags: [tag] }, { fetchCache: true, tags: [tag] })
      await new Promise((r) => setTimeout(r, 5))
      await h.revalidateTag([tag], { expire: 600 })
      const got = await h.get(fk, { kind: 'FETCH', revalidate: 60, tags: [tag], softTags: [] })
      expect((Date.now() - got.lastModified) / 1000).toBeGreaterThan(60)
    })

    it('both key styles, long and unicode keys', async () => {
      const keys = [
        '/isr',
        '/index',
        '/route-cache/APP_PAGE/c38585ba/$/items/[id]',
        `/ünïcødé/页面/${'é'.repeat(600)}`,
        '/' + 'x/'.repeat(900),
        '/a%2Fb',
        '/a/b',
      ]
      const core = fc._coreFor(opts)
      const objectKeys = new Set(keys.map((k) => core.objectKey(k, 'APP_PAGE')))
      expect(objectKeys.size).toBe(keys.length)
      for (const ok of objectKeys) expect(Buffer.byteLength(ok)).toBeLessThanOrEqual(1024)
      for (const [i, key] of keys.entries()) {
        await h.set(key, appPage({ html: `page ${i}` }), setCtx({ revalidate: 60 }))
      }
      dropMemory(opts)
      for (const [i, key] of keys.entries()) {
        expect((await h.get(key, PAGE_CTX)).value.html).toBe(`page ${i}`)
      }
    })

    it('a rewritten or reloaded entry never serves an older decoded html string', async () => {
      const key = '/rewrite'
      for (let i = 0; i < 3; i++) {
        await h.set(key, appPage({ html: `version ${i}` }), setCtx({ revalidate: 60 }))
        expect((await h.get(key, PAGE_CTX)).value.html).toBe(`version ${i}`)
        expect((await h.get(key, PAGE_CTX)).value.html).toBe(`version ${i}`) // from the string cache
        const pages = { kind: 'PAGES', html: `pages ${i}`, pageData: { i }, headers: undefined, status: undefined }
        await h.set('/rewrite-pages', pages, setCtx({ revalidate: 60 }, 'PAGES'))
        expect((await h.get('/rewrite-pages', { kind: 'PAGES' })).value).toEqual(pages)
        expect((await h.get('/rewrite-pages', { kind: 'PAGES' })).value).toEqual(pages)
      }
      dropMemory(opts)
      expect((await h.get(key, PAGE_CTX)).value.html).toBe('version 2')
      expect((await h.get(key, PAGE_CTX)).value.html).toBe('version 2')
    })

    it('bad input from JS: get is a miss, set rejects with FLEETCACHE_INVALID_INPUT and stores nothing', async () => {
      expect(await h.get(undefined, PAGE_CTX)).toBeNull()
      expect(await h.get(42)).toBeNull()
      expect(await h.get('/never-set', undefined)).toBeNull()
      const bad = [
        ['/bad', { kind: 'APP_PAGE', html: 1 }, setCtx({ revalidate: 1 })],
        ['/bad', { kind: 'WHAT' }, {}],
        ['/bad', { kind: 'APP_PAGE', html: 'x', rscData: 'not a buffer' }, {}],
        ['/bad', { kind: 'APP_PAGE', html: 'x', segmentData: {} }, {}],
        [null, null, {}],
        ['/bad', { kind: 'APP_PAGE', html: 'x' }, 'ctx'],
      ]
      for (const [key, data, ctx] of bad) {
        await expect(h.set(key, data, ctx), JSON.stringify([key, data, ctx])).rejects.toMatchObject({ code: 'FLEETCACHE_INVALID_INPUT' })
      }
      expect(await h.get('/bad', PAGE_CTX)).toBeNull()
      h.resetRequestCache()
    })

    it('pathsForTags lists app pages and route handlers carrying a tag', async () => {
      const tag = `p-${Math.random().toString(36).slice(2)}`
      await h.set(ROUTE_KEY('/blog/[slug]/page', '/blog/one'), appPage({ headers: { 'x-next-cache-tags': `${tag},_N_T_/blog/one` } }), setCtx({ revalidate: 60 }))
      await h.set('/route-cache/APP_ROUTE/bb/$/api/feed', { kind: 'APP_ROUTE', body: Buffer.from('{}'), status: 200, headers: { 'x-next-cache-tags': tag } }, setCtx({ revalidate: 60 }, 'APP_ROUTE'))
      await h.set('/index', appPage({ headers: { 'x-next-cache-tags': tag } }), setCtx({ revalidate: 60 }))
      expect(await fc.pathsForTags([tag], opts)).toEqual(['/', '/api/feed', '/blog/one'])
      expect(fc.pagesRouterPaths('/route-cache/PAGES/491f/$/posts/2', 'B1')).toEqual(['/posts/2', '/_next/data/B1/posts/2.json'])
    })
  })
}
