// One "instance" of a fleet for the multi-process tests and the propagation benchmark: its own
// Node process and native core, driven over IPC. Options arrive as JSON in argv[2].
import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
const fc = require('../index.js')

const options = JSON.parse(process.argv[2])
const Handler = fc.createCacheHandler(options)
const handler = new Handler({})
const PAGE_CTX = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false }

function page(html, tags) {
  return { kind: 'APP_PAGE', html, rscData: Buffer.from('rsc'), postponed: undefined, headers: { 'x-next-cache-tags': tags.join(',') }, status: undefined, segmentData: undefined }
}

function describe(got) {
  if (!got) return { hit: false, now: Date.now() }
  return { hit: true, html: got.value && got.value.html, lastModified: got.lastModified, revalidate: got.cacheControl && got.cacheControl.revalidate, now: Date.now() }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const ops = {
  async set({ key, html, tags = [], revalidate = 60 }) {
    await handler.set(key, page(html, tags), { ...PAGE_CTX, cacheControl: { revalidate, expire: 31536000 } })
  },
  async get({ key }) {
    return describe(await handler.get(key, PAGE_CTX))
  },
  async revalidateTag({ tags, durations }) {
    await handler.revalidateTag(tags, durations)
    return { at: Date.now() }
  },
  /** Polls get until `until` holds: 'null' | 'stale' | {html}. Resolves with when it first held. */
  async waitFor({ key, until, timeoutMs = 10_000, everyMs = 2 }) {
    const started = Date.now()
    while (Date.now() - started < timeoutMs) {
      const got = await handler.get(key, PAGE_CTX)
      const d = describe(got)
      const ok =
        until === 'null' ? !d.hit :
        until === 'stale' ? d.hit && d.lastModified + (d.revalidate ?? 0) * 1000 < Date.now() :
        d.hit && d.html === until.html
      if (ok) return { at: Date.now(), ...d }
      await sleep(everyMs)
    }
    return { timedOut: true, ...describe(await handler.get(key, PAGE_CTX)) }
  },
  /** Serves `rate` gets per second of `key` for `seconds` (load for the request-count benchmark). */
  async load({ key, rate, seconds }) {
    const end = Date.now() + seconds * 1000
    let n = 0
    while (Date.now() < end) {
      const tick = Date.now()
      for (let i = 0; i < rate / 100; i++, n++) await handler.get(key, PAGE_CTX)
      await sleep(Math.max(0, 10 - (Date.now() - tick)))
    }
    return { gets: n }
  },
  /** Serves `key` as Next would for `seconds`, `rate` gets a second: a stale answer starts one
   *  background render in this process (Next dedupes them per process) that sets the key
   *  `renderMs` later. Returns the renders started and the page served last. */
  async serveLikeNext({ key, tags = [], seconds, rate = 200, renderMs = 300 }) {
    const end = Date.now() + seconds * 1000
    let renders = 0
    let rendering = null
    let last = null
    while (Date.now() < end) {
      const tick = Date.now()
      for (let i = 0; i < rate / 100; i++) {
        const d = describe(await handler.get(key, PAGE_CTX))
        last = d.html
        if (d.hit && d.lastModified + d.revalidate * 1000 < d.now && !rendering) {
          renders++
          rendering = sleep(renderMs)
            .then(() => handler.set(key, page(`v2-${process.pid}`, tags), { ...PAGE_CTX, cacheControl: { revalidate: d.revalidate, expire: 31536000 } }))
            .finally(() => { rendering = null })
        }
      }
      await sleep(Math.max(0, 10 - (Date.now() - tick)))
    }
    await rendering
    return { renders, last }
  },
  /** Sets every key of `keys`, key i tagged `tags[i]`. */
  async setMany({ keys, tags, html = 'v1' }) {
    await Promise.all(keys.map((key, i) => handler.set(key, page(html, [tags[i]]), { ...PAGE_CTX, cacheControl: { revalidate: 3600, expire: 31536000 } })))
  },
  /** How many of `keys` are hits (a revalidated entry is not). */
  async countHits({ keys }) {
    let n = 0
    for (const key of keys) if (await handler.get(key, PAGE_CTX)) n++
    return n
  },
  /** The keys of `keys` that are hits. */
  async hits({ keys }) {
    const out = []
    for (const key of keys) if (await handler.get(key, PAGE_CTX)) out.push(key)
    return out
  },
  /** Revalidates each tag with its own concurrent call; resolves to how long each caller waited (ms). */
  async revalidateEach({ tags }) {
    return Promise.all(tags.map(async (t) => {
      const t0 = performance.now()
      await handler.revalidateTag([t])
      return performance.now() - t0
    }))
  },
  /** `n` gets of keys not in memory, one every `everyMs`; resolves to each one's latency (ms). */
  async timedGets({ prefix, n, everyMs }) {
    const out = []
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      await handler.get(`${prefix}/${i}`, PAGE_CTX)
      const took = performance.now() - t0
      out.push(took)
      await sleep(Math.max(0, everyMs - took))
    }
    return out
  },
  /** One revalidateTag call of all `tags`; resolves to how long the caller waited (ms). */
  async revalidateAll({ tags }) {
    const t0 = performance.now()
    await handler.revalidateTag(tags)
    return performance.now() - t0
  },
  async stats() {
    return fc.stats(options)
  },
  /** Serves this process's `metrics()` on `port` (127.0.0.1) at /metrics, for a Prometheus. */
  async serveMetrics({ port }) {
    const http = require('node:http')
    await new Promise((resolve) => http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': fc.METRICS_CONTENT_TYPE })
      res.end(fc.metrics())
    }).listen(port, '127.0.0.1', resolve))
    return { port }
  },
  /** Traffic for `seconds`: `rate` gets a second over `keys` keys; a miss is rendered and set. */
  async traffic({ seconds, rate = 200, keys = 50, tag = 'shot' }) {
    const end = Date.now() + seconds * 1000
    let n = 0
    while (Date.now() < end) {
      const tick = Date.now()
      for (let i = 0; i < rate / 10; i++, n++) {
        const key = `/shot/${Math.floor(Math.random() ** 2 * keys)}`
        if (!(await handler.get(key, PAGE_CTX))) await handler.set(key, page(`v${Date.now()}`, [tag, `${tag}-${key}`]), { ...PAGE_CTX, cacheControl: { revalidate: 3600, expire: 31536000 } })
      }
      await sleep(Math.max(0, 100 - (Date.now() - tick)))
    }
    return { gets: n }
  },
  /** A revalidation of `tags` with its receipt: how long the caller waited, and the receipt. */
  async receipt({ tags, timeoutMs = 10_000 }) {
    const t0 = performance.now()
    const r = await fc.revalidate({ tags, wait: true, timeoutMs }, options)
    return { took: performance.now() - t0, receipt: r }
  },
  /** `n` concurrent gets of `key`; how many were hits. */
  async getConcurrent({ key, n }) {
    const got = await Promise.all(Array.from({ length: n }, () => handler.get(key, PAGE_CTX)))
    return got.filter(Boolean).length
  },
  /** This process's resident memory now and at its peak, in bytes. */
  async memory() {
    return { rss: process.memoryUsage().rss, maxRss: process.resourceUsage().maxRSS * 1024 }
  },
  async ready() {
    const until = Date.now() + 10_000
    while (!fc.stats(options).feedTrusted && Date.now() < until) await sleep(20)
    return { trusted: fc.stats(options).feedTrusted }
  },
}

process.on('message', async ({ id, op, args }) => {
  try {
    const result = await ops[op](args || {})
    process.send({ id, result })
  } catch (err) {
    process.send({ id, error: String(err && err.stack || err) })
  }
})
process.send({ ready: true })
