// Every instance sees every revalidation: three (or four) separate Node processes, each with its
// own native core, against one local S3 bucket and DynamoDB table.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { startInstance } from '../scripts/fleet.mjs'
import { fc } from './helpers.mjs'

const ep = process.env.FLEETCACHE_TEST_ENDPOINT
const BOUND_MS = 3_000 // generous for a noisy shared machine; `npm run bench` measures the real p50/p99

describe.skipIf(!ep)('a fleet of three processes', () => {
  const run = Date.now().toString(36)
  const options = { bucket: `fleet-${run}`, table: `fleet-${run}`, s3Endpoint: ep, dynamodbEndpoint: ep, region: 'us-east-1', leaseMs: 3000 }
  const env = { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' }
  let A, B, C
  const extra = []
  beforeAll(async () => {
    Object.assign(process.env, env)
    await fc._coreFor(options).ensureResources()
    ;[A, B, C] = await Promise.all([startInstance(options, env), startInstance(options, env), startInstance(options, env)])
  })
  afterAll(async () => {
    await Promise.all([A, B, C, ...extra].filter(Boolean).map((i) => i.stop()))
  })

  async function seed(key, tags, revalidate = 60) {
    await A.call('set', { key, html: 'v1', tags, revalidate })
    for (const i of [B, C]) expect((await i.call('get', { key })).html).toBe('v1') // now in their memory
  }

  it('revalidateTag in A: B and C return null within the bound', async () => {
    await seed('/p1', ['t1'])
    await new Promise((r) => setTimeout(r, 5))
    const { at } = await A.call('revalidateTag', { tags: ['t1'] })
    const seen = await Promise.all([B, C].map((i) => i.call('waitFor', { key: '/p1', until: 'null', timeoutMs: 10_000 })))
    for (const s of seen) {
      expect(s.timedOut).toBeUndefined()
      expect(s.at - at).toBeLessThan(BOUND_MS)
    }
  })

  it('revalidateTag with {expire} in A: B is told the entry is stale, C serves it meanwhile (one regeneration)', async () => {
    await seed('/p2', ['t2'])
    await new Promise((r) => setTimeout(r, 5))
    const { at } = await A.call('revalidateTag', { tags: ['t2'], durations: { expire: 3600 } })
    const s = await B.call('waitFor', { key: '/p2', until: 'stale' })
    expect(s.timedOut).toBeUndefined()
    expect(s.hit).toBe(true)
    expect(s.html).toBe('v1')
    expect(s.at - at).toBeLessThan(BOUND_MS)
    await new Promise((r) => setTimeout(r, 500)) // C has read the event too
    const c = await C.call('get', { key: '/p2' })
    expect(c.hit).toBe(true)
    expect(c.html).toBe('v1')
    expect(c.lastModified + c.revalidate * 1000 >= c.now, 'served as fresh: B regenerates it').toBe(true)
  })

  it("revalidateTag(t, 'max') under load on three instances: exactly one renders, and all serve its page", async () => {
    await seed('/p6', ['t6'])
    const load = [A, B, C].map((i) => i.call('serveLikeNext', { key: '/p6', tags: ['t6'], seconds: 4, rate: 200, renderMs: 300 }))
    await new Promise((r) => setTimeout(r, 500))
    await A.call('revalidateTag', { tags: ['t6'], durations: { expire: 3600 } })
    const served = await Promise.all(load)
    expect(served.map((s) => s.renders).reduce((a, b) => a + b, 0)).toBe(1)
    const page = served.find((s) => s.renders === 1).last
    expect(page).toMatch(/^v2-/)
    for (const s of served) expect(s.last).toBe(page)
  })

  it('set in A: B and C return the new value, not their old copy', async () => {
    await seed('/p3', [])
    await A.call('set', { key: '/p3', html: 'v2', tags: [] })
    const at = Date.now()
    const seen = await Promise.all([B, C].map((i) => i.call('waitFor', { key: '/p3', until: { html: 'v2' } })))
    for (const s of seen) {
      expect(s.timedOut).toBeUndefined()
      expect(s.at - at).toBeLessThan(BOUND_MS)
    }
  })

  it('a process started after a revalidation honours it', async () => {
    await seed('/p4', ['t4'])
    await new Promise((r) => setTimeout(r, 5))
    await A.call('revalidateTag', { tags: ['t4'] })
    const D = await startInstance(options, env)
    extra.push(D)
    expect((await D.call('get', { key: '/p4' })).hit).toBe(false)
  })

  it('a time-stale entry requested concurrently: exactly one instance sees it stale; a killed winner is taken over after the lease', async () => {
    await seed('/p5', [], 1)
    await new Promise((r) => setTimeout(r, 1300))
    const results = await Promise.all([A, B, C].map((i) => i.call('get', { key: '/p5' })))
    const stale = results.map((r) => r.hit && r.lastModified + 1000 < r.now)
    expect(results.every((r) => r.hit)).toBe(true)
    expect(stale.filter(Boolean).length).toBe(1)
    // The others keep serving it as fresh while the winner regenerates.
    const instances = [A, B, C]
    const winner = instances[stale.indexOf(true)]
    const others = instances.filter((i) => i !== winner)
    for (const o of others) {
      const r = await o.call('get', { key: '/p5' })
      expect(r.lastModified + 1000 >= r.now).toBe(true)
    }
    // Kill the winner mid-regeneration: once its lease (3 s) expires another instance takes over.
    winner.kill()
    // The first survivor to be told (whichever it is) takes over; the other is not told meanwhile.
    const calls = others.map((o) => o.call('waitFor', { key: '/p5', until: 'stale', timeoutMs: 10_000, everyMs: 50 }))
    for (const c of calls) c.catch(() => {}) // the slower one may still poll when the test ends
    const takeover = await Promise.race(calls)
    expect(takeover.timedOut, 'a survivor is told to regenerate once the dead winner\'s lease expired').toBeUndefined()
    // and only one of the survivors is told to regenerate
    const after = await Promise.all(others.map((o) => o.call('get', { key: '/p5' })))
    expect(after.filter((r) => r.lastModified + 1000 < r.now).length).toBe(1)
  })
})
