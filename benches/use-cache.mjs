// `'use cache'` handlers side by side, in memory: fleetcache's (`fleetcache/use-cache`, memory
// backend, no feed: the in-memory tier's cost, no network) and Next's built-in `default` handler (the
// per-process LRU `createDefaultCacheHandler` of the example app's installed Next). Each `get`
// reads its stream to the end, as Next does.
import { createRequire } from 'node:module'
import { appDir, installApp } from '../scripts/next-fleet.mjs'
import { measure } from './measure.mjs'

const require = createRequire(import.meta.url)

function entry(bytes) {
  return {
    value: new ReadableStream({ start(c) { c.enqueue(bytes); c.close() } }),
    tags: ['posts'],
    timestamp: Date.now(),
    revalidate: 900,
    expire: 86400,
    stale: 300,
  }
}

async function run(handler, bytes, iters) {
  const keys = Array.from({ length: 100 }, (_, i) => JSON.stringify(['c06c75be3fa6d56b2d40adaee425d8c479a74d59a1', [String(i)], ['build']]))
  const soft = ['_N_T_/layout', '_N_T_/items/layout', '_N_T_/items/page', '_N_T_/items']
  const setNs = await measure((i) => handler.set(keys[i % 100], Promise.resolve(entry(bytes))), iters)
  const getNs = await measure(async (i) => {
    const e = await handler.get(keys[i % 100], soft)
    if (!e) throw new Error('miss')
    await new Response(e.value).arrayBuffer()
  }, iters)
  return { setNs, getNs }
}

export async function useCacheBench({ fc, quick }) {
  await installApp(appDir)
  const nextRequire = createRequire(`${appDir}/package.json`)
  const { createDefaultCacheHandler } = nextRequire('next/dist/server/lib/cache-handlers/default.js')
  const nextVersion = nextRequire('next/package.json').version
  const iters = quick ? 2000 : 20000
  const out = { nextVersion, sizes: [] }
  for (const size of [1024, 50 * 1024]) {
    const bytes = new TextEncoder().encode('0:{"rows":[' + '"a row",'.repeat(size / 8) + '""]}\n').subarray(0, size)
    const builtin = await run(createDefaultCacheHandler(50 * 1024 * 1024), bytes, iters)
    // No change feed (as the built-in has none): tens of thousands of sets a second would put the
    // feed more than 1,000 events behind and drop the memory tier mid-measurement.
    const ours = await run(fc.createUseCacheHandler({ backend: 'memory', prefix: `ucbench${size}`, feedIntervalMs: 0 }), bytes, iters)
    out.sizes.push({ size, builtin, ours })
  }
  return out
}
