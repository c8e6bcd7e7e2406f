// Cache Components end to end (Next 16): the example in examples/cache-components, built with
// fleetcache as both `cacheHandler` and `cacheHandlers`, and once more with Next's own caches as
// the reference, driven over real HTTP. Two fleetcache instances share one bucket and table.
// Each page shows a stamp its cached function computed (when, a random part, which instance), so
// "served" and "recomputed" can be told apart.
import { describe, it, expect, beforeAll, afterAll } from 'vitest'
import { installApp, buildApp, startApp, request, localFleetEnv, appCcDir as dir } from '../../scripts/next-fleet.mjs'
import { fc } from '../helpers.mjs'

const ep = process.env.FLEETCACHE_TEST_ENDPOINT
const BOUND = 1_500 // feed bound plus a re-render, generous for a shared machine
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const port = 3241 + Number(process.env.FLEETCACHE_E2E_PORT_OFFSET || 0)

describe.skipIf(!ep)("Cache Components end to end ('use cache' on Next 16)", () => {
  const run = Date.now().toString(36)
  let A, B, R, base
  const stampOf = async (inst, p) => {
    const r = await request(inst.url, p)
    expect(r.status, `${inst.url}${p}`).toBe(200)
    expect(r.stamp, `${inst.url}${p} shows its stamp`).toBeDefined()
    return r.stamp
  }
  const action = async (inst, p) => {
    const html = await (await fetch(`${inst.url}${p}`)).text()
    const field = (/name="(\$ACTION_ID_[0-9a-f]+)"/.exec(html) || [])[1]
    expect(field, 'the progressive-enhancement action field').toBeDefined()
    const form = new FormData()
    form.append(field, '')
    const res = await fetch(`${inst.url}${p}`, { method: 'POST', body: form, redirect: 'manual' })
    expect(res.status).toBeLessThan(500)
  }
  const post = async (inst, q) => expect((await request(inst.url, `/api/revalidate?${q}`, { method: 'POST' })).status).toBe(200)

  beforeAll(async () => {
    await installApp(dir)
    base = localFleetEnv(ep, `cc-${run}`)
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' })
    await fc._coreFor({ bucket: base.FLEETCACHE_BUCKET, table: base.FLEETCACHE_TABLE, s3Endpoint: ep, dynamodbEndpoint: ep, region: 'us-east-1', feedIntervalMs: 0 }).ensureResources()
    await buildApp({ ...base, FLEETCACHE_E2E_DIST: '.next-e2e' }, dir)
    await buildApp({ ...base, FLEETCACHE_E2E_DIST: '.next-builtin', FLEETCACHE_E2E_BUILTIN: '1' }, dir)
    ;[A, B, R] = await Promise.all([
      startApp(port, { ...base, FLEETCACHE_E2E_DIST: '.next-e2e', FLEETCACHE_DEMO_INSTANCE: 'A' }, dir),
      startApp(port + 1, { ...base, FLEETCACHE_E2E_DIST: '.next-e2e', FLEETCACHE_DEMO_INSTANCE: 'B' }, dir),
      startApp(port + 2, { ...base, FLEETCACHE_E2E_DIST: '.next-builtin', FLEETCACHE_E2E_BUILTIN: '1', FLEETCACHE_DEMO_INSTANCE: 'R' }, dir),
    ])
  }, 600_000)
  afterAll(async () => {
    await Promise.all([A, B, R].filter(Boolean).map((i) => i.stop()))
  })

  it("a 'use cache' and a 'use cache: remote' result computed on A is served by B without recomputing", async () => {
    for (const p of ['/uc/1', '/remote/1']) {
      const a = await stampOf(A, p)
      expect(a, p).toContain('on A')
      expect(await stampOf(A, p), `${p} again on A`).toBe(a)
      expect(await stampOf(B, p), `${p} on B`).toBe(a)
    }
  })

  it('updateTag in a server action on A: read-your-writes on A, and B within the bound', async () => {
    const before = await stampOf(A, '/actions')
    expect(await stampOf(B, '/actions')).toBe(before)
    await action(A, '/actions')
    const mine = await stampOf(A, '/actions')
    expect(mine, 'A recomputes at once').not.toBe(before)
    await sleep(BOUND)
    expect(await stampOf(B, '/actions'), 'B serves the new result').toBe(mine)
  })

  it("revalidateTag(t, 'max') on A: the old result is served once more, then the new one, on both", async () => {
    const p = '/uc/2'
    const before = await stampOf(A, p)
    expect(await stampOf(B, p)).toBe(before)
    await post(A, 'tag=uc-items&profile=max')
    await sleep(BOUND)
    expect(await stampOf(B, p), 'B: stale, served once more').toBe(before)
    let after = before
    for (let i = 0; i < 20 && after === before; i++) {
      await sleep(250)
      after = await stampOf(B, p)
    }
    expect(after, 'B: the background regeneration').not.toBe(before)
    expect(await stampOf(A, p), 'A serves the regenerated result too').toBe(after)
  })

  it("revalidatePath reaches 'use cache' results through soft tags, on both instances", async () => {
    const p = '/uc/3'
    const before = await stampOf(A, p)
    expect(await stampOf(B, p)).toBe(before)
    await post(A, `path=${p}`)
    await sleep(BOUND)
    const after = await stampOf(B, p)
    expect(after).not.toBe(before)
    // A's copy is expired too. Asked a moment later it may serve B's result from the store (B's
    // `set` landed) or compute its own (not yet): either way, not the old one.
    expect(await stampOf(A, p)).not.toBe(before)
  })

  it("single-instance sequences are the same as with Next's built-in 'use cache' handler", async () => {
    // served (=) or recomputed (new) at each step, on A alone and on the reference R.
    const sequence = async (inst, id) => {
      const p = `/uc/${id}`
      const out = []
      let last = await stampOf(inst, p)
      const step = async () => {
        const s = await stampOf(inst, p)
        out.push(s === last ? '=' : 'new')
        last = s
      }
      await step()
      await post(inst, `tag=uc-item-${id}`)
      await step()
      await step()
      await post(inst, `tag=uc-item-${id}&profile=max`)
      await step()
      await sleep(500)
      await step()
      await step()
      await post(inst, `path=${p}`)
      await step()
      await step()
      return out
    }
    const [a, r] = [await sequence(A, 10), await sequence(R, 10)]
    expect(a).toEqual(r)
    expect(a).toEqual(['=', 'new', '=', '=', 'new', '=', 'new', '='])
  })
})
