// The `'use cache'` handler contract (Next 16 `cacheHandlers`; ../shared/reference/
// next-cache-contract.md §2, and the installed next/dist/server/lib/cache-handlers/types.d.ts):
// each rule pinned against the memory backend and, when npm test started the local servers,
// against S3 + DynamoDB, reading from the memory tier and again after it is dropped.
import { describe, it, expect, beforeAll } from 'vitest'
import { backends, dropMemory, fc, sleep } from './helpers.mjs'

process.env.AWS_ACCESS_KEY_ID ??= 'test'
process.env.AWS_SECRET_ACCESS_KEY ??= 'test'

const enc = new TextEncoder()
const FLIGHT = '0:"$@1"\n1:{"label":"a"}\n'
const key = (name) => JSON.stringify([`c06c75be3fa6d56b2d40adaee425d8c479a74d59a1`, [name], ['build']])

/** A pending CacheEntry as Next passes it to `set`: its value stream delivered in `chunks`. */
function entry({ chunks = [FLIGHT], tags = [], timestamp = Date.now() + 0.25, revalidate = 900, expire = 0xfffffffe, stale = 300 } = {}) {
  const value = new ReadableStream({
    start(c) {
      for (const ch of chunks) c.enqueue(enc.encode(ch))
      c.close()
    },
  })
  return { value, tags, timestamp, revalidate, expire, stale }
}

async function text(stream) {
  return new Response(stream).text()
}

for (const backend of backends()) {
  describe(`'use cache' handler on ${backend.name}`, () => {
    let opts
    let uc
    let IC
    beforeAll(async () => {
      opts = backend.options()
      uc = fc.createUseCacheHandler(opts)
      IC = fc.createCacheHandler(opts)
      await fc._coreFor(opts).ensureResources()
    })
    // Every read twice: from memory, then from the shared store.
    const bothWays = async (fn) => {
      await fn()
      dropMemory(opts)
      await fn()
    }

    it('returns what set stored, with a new stream on every get and the exact metadata', async () => {
      const k = key('a')
      const ts = Date.now() - 1 + 0.1475 // Next's timestamps are floats
      await uc.set(k, Promise.resolve(entry({ chunks: ['0:"$@1"\n', '1:{"label":"a"}\n'], tags: ['posts'], timestamp: ts, expire: 0xfffffffe })))
      await bothWays(async () => {
        const a = await uc.get(k, [])
        const b = await uc.get(k, [])
        expect(a.value).not.toBe(b.value)
        expect(await text(a.value)).toBe(FLIGHT)
        expect(await text(b.value)).toBe(FLIGHT)
        expect({ ...a, value: undefined }).toEqual({ value: undefined, tags: ['posts'], timestamp: ts, revalidate: 900, expire: 0xfffffffe, stale: 300 })
      })
      expect(await uc.get(key('never-set'), [])).toBeUndefined()
    })

    it('a get for a key whose set is still running waits for that set', async () => {
      const k = key('pending')
      let resolve
      const pending = new Promise((r) => (resolve = r))
      const setting = uc.set(k, pending)
      const getting = uc.get(k, [])
      await sleep(50)
      resolve(entry())
      const got = await getting
      expect(got).toBeDefined()
      expect(await text(got.value)).toBe(FLIGHT)
      await setting
    })

    it('an expired tag or soft tag gives undefined; a tag revalidated with a profile gives revalidate -1 once, then the new result is fresh', async () => {
      const [k1, k2, k3] = [key('t1'), key('t2'), key('t3')]
      await uc.set(k1, Promise.resolve(entry({ tags: ['uc-expire'] })))
      await uc.set(k2, Promise.resolve(entry({ tags: ['uc-profile'] })))
      await uc.set(k3, Promise.resolve(entry({ tags: [] })))
      await sleep(5)
      await uc.updateTags(['uc-expire'])
      await uc.updateTags(['uc-profile'], { expire: 3600 })
      await uc.updateTags(['_N_T_/uc-page'])
      await bothWays(async () => {
        expect(await uc.get(k1, [])).toBeUndefined()
        const stale = await uc.get(k2, [])
        expect(stale.revalidate).toBe(-1)
        expect(await text(stale.value)).toBe(FLIGHT)
        expect(await uc.get(k3, ['_N_T_/layout', '_N_T_/uc-page'])).toBeUndefined() // revalidatePath reaches it
        expect((await uc.get(k3, ['_N_T_/layout', '_N_T_/other'])).revalidate).toBe(900)
      })
      await uc.set(k2, Promise.resolve(entry({ tags: ['uc-profile'], timestamp: Date.now() + 0.5 })))
      expect((await uc.get(k2, [])).revalidate).toBe(900)
    })

    it('a result whose render started before a revalidation is not fresh after it', async () => {
      const k = key('race')
      const started = Date.now() - 50
      await uc.updateTags(['uc-race'])
      await uc.set(k, Promise.resolve(entry({ tags: ['uc-race'], timestamp: started })))
      expect(await uc.get(k, [])).toBeUndefined()
    })

    it('expire 0 (a dynamic result) is not stored; a failing stream stores nothing and rejects nothing', async () => {
      const k = key('dynamic')
      await uc.set(k, Promise.resolve(entry({ expire: 0 })))
      expect(await uc.get(k, [])).toBeUndefined()
      const broken = { ...entry(), value: new ReadableStream({ start(c) { c.enqueue(enc.encode('0:')); c.error(new Error('render failed')) } }) }
      await expect(uc.set(key('broken'), Promise.resolve(broken))).resolves.toBeUndefined()
      await expect(uc.set(key('rejected'), Promise.reject(new Error('no entry')))).resolves.toBeUndefined()
      // A get waiting on a set that fails resolves too (a miss).
      let fail
      const failing = uc.set(key('fails'), new Promise((_, reject) => (fail = reject)))
      const waiting = uc.get(key('fails'), [])
      fail(new Error('render failed'))
      await expect(waiting).resolves.toBeUndefined()
      await failing
      expect(await uc.get(key('broken'), [])).toBeUndefined()
      await expect(uc.get(42, [])).resolves.toBeUndefined()
      await expect(uc.get(key('x'), 'not an array')).resolves.toBeUndefined()
    })

    it('refreshTags does nothing and getExpiration answers Infinity (soft tags are judged in get)', async () => {
      await expect(uc.refreshTags()).resolves.toBeUndefined()
      expect(await uc.getExpiration(['_N_T_/layout'])).toBe(Infinity)
    })

    it("Next's revalidateTag reaches both handlers: one revalidation, written once", async () => {
      const before = fc.stats(opts).revalidations
      const ic = new IC({})
      await Promise.all([uc.updateTags(['uc-once'], { expire: 60 }), ic.revalidateTag(['uc-once'], { expire: 60 })])
      expect(fc.stats(opts).revalidations - before).toBe(1)
      await uc.updateTags(['uc-once'])
      expect(fc.stats(opts).revalidations - before).toBe(2) // a later call is a new revalidation
    })
  })
}

describe("'use cache' handler: no network outside get and set", () => {
  it('refreshTags and getExpiration send nothing to DynamoDB, even when it cannot be reached', async () => {
    const ep = 'http://127.0.0.1:9' // nothing listens (discard port)
    const opts = { bucket: 'uc-none', table: 'uc-none', s3Endpoint: ep, dynamodbEndpoint: ep, region: 'us-east-1', feedIntervalMs: 0 }
    const uc = fc.createUseCacheHandler(opts)
    const t0 = Date.now()
    for (let i = 0; i < 100; i++) {
      await uc.refreshTags()
      await uc.getExpiration(['_N_T_/layout', 'posts'])
    }
    expect(Date.now() - t0).toBeLessThan(5_000) // no connect attempts (a bound, not a speed target)
    expect(fc.stats(opts).dynamodbReads).toBe(0)
  })
})

describe("'use cache' handler: nothing retained", () => {
  it('20,000 set/get of 50 KB results: heap after GC grows < 16 MiB, RSS < memoryBytes + 128 MiB (a retained stream per call would be ~1 GiB)', async () => {
    const { spawnSync } = await import('node:child_process')
    const path = await import('node:path')
    const script = path.join(import.meta.dirname, 'fixtures', 'use-cache-leak.mjs')
    const r = spawnSync(process.execPath, ['--expose-gc', script, '20000'], { encoding: 'utf8', env: { ...process.env, AWS_EC2_METADATA_DISABLED: 'true' } })
    expect(r.status, r.stderr).toBe(0)
    const m = JSON.parse(r.stdout.trim().split('\n').pop())
    const MiB = 1024 * 1024
    const heap = (m.after.heap - m.before.heap) / MiB
    const rss = (m.after.rss - m.before.rss) / MiB
    console.log(`[use-cache] ${m.n} set/get of 50 KB (${(m.bytesRead / MiB).toFixed(0)} MiB read back): heap after GC ${(m.before.heap / MiB).toFixed(1)} → ${(m.after.heap / MiB).toFixed(1)} MiB, RSS ${(m.before.rss / MiB).toFixed(0)} → ${(m.after.rss / MiB).toFixed(0)} MiB (memoryBytes ${m.budget / MiB} MiB)`)
    expect(m.bytesRead).toBe(m.n * 50 * 1024)
    expect(heap).toBeLessThan(16)
    expect(rss).toBeLessThan(m.budget / MiB + 128)
  }, 120_000)
})
