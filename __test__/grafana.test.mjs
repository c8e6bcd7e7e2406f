// Issue 27: the dashboard in examples/grafana queries only what fleetcache exports: every metric
// name in every panel's query is a family `metrics()` writes (or one that appears once a core has
// its AWS clients or CDN purger, `lateMetricFamilies()`), with the suffix its kind allows.
import { describe, it, expect } from 'vitest'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { handlerFor, fc } from './helpers.mjs'
import { parseExposition } from './prometheus.mjs'

const require = createRequire(import.meta.url)
const binding = require('../binding.js')
const root = path.resolve(import.meta.dirname, '..')

describe('examples/grafana/fleetcache.json', () => {
  it('is a dashboard whose every query names families the handler exports', async () => {
    const options = { backend: 'memory', prefix: `grafana${Date.now()}` }
    const h = await handlerFor(options)
    await h.get('/x', { kind: 'APP_PAGE' })
    const kinds = new Map(Object.entries(parseExposition(fc.metrics(options))).map(([name, f]) => [name, f.type]))
    for (const f of binding.lateMetricFamilies()) kinds.set(`fleetcache_${f.name}${f.kind === 'counter' ? '_total' : ''}`, f.kind)
    const series = (kind) => ({ counter: [''], gauge: [''], histogram: ['_bucket', '_sum', '_count'] })[kind]
    const exported = new Set([...kinds].flatMap(([name, kind]) => series(kind).map((s) => name + s)))

    const dash = JSON.parse(fs.readFileSync(path.join(root, 'examples', 'grafana', 'fleetcache.json'), 'utf8'))
    expect(dash.panels.length).toBeGreaterThanOrEqual(8)
    const named = []
    for (const p of dash.panels) {
      expect(p.targets.length, p.title).toBeGreaterThan(0)
      for (const t of p.targets) {
        const names = t.expr.match(/fleetcache_[a-z_]+/g) || []
        expect(names.length, `${p.title}: ${t.expr}`).toBeGreaterThan(0)
        for (const n of names) {
          expect(exported.has(n), `${p.title}: ${n} is not exported`).toBe(true)
          named.push(n)
        }
      }
    }
    // The panels: hit ratio, gets by result, feed lag, revalidations and their reach,
    // breakers, outbox depth, memory.
    for (const n of ['fleetcache_gets_total', 'fleetcache_feed_lag_seconds_bucket', 'fleetcache_revalidations_total', 'fleetcache_feed_events_total', 'fleetcache_breaker_open', 'fleetcache_outbox_depth', 'fleetcache_memory_bytes']) {
      expect(named, n).toContain(n)
    }
  })
})
