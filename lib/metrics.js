'use strict'
// The metrics of this process's cores: Prometheus text, and OpenTelemetry instruments.

const { checkedOptions } = require('./options.js')
const { coreFor, servedCores } = require('./cores.js')
const { FleetCacheError } = require('../error.js')
const binding = require('../binding.js')

/** The cores to report: the one for `options`, or every serving core (labelled when several). */
function coresToReport(options) {
  if (options !== undefined) return [[[], coreFor(checkedOptions(options), undefined)]]
  const list = [...servedCores]
  if (list.length <= 1) return list.map((c) => [[], c])
  const prefixes = list.map((c) => c.prefix)
  const unique = new Set(prefixes).size === prefixes.length
  return list.map((c, i) => [unique ? ['prefix', c.prefix] : ['prefix', c.prefix, 'core', String(i)], c])
}

/** Every sample of the cores to report, with `prefix` added when there are several. */
function samples(options) {
  const out = []
  for (const [labels, core] of coresToReport(options)) {
    for (const s of core.metricSamples()) {
      s.labels.push(...labels)
      out.push(s)
    }
  }
  return out
}

function familyName(s) {
  return `fleetcache_${s.name}${s.kind === 'counter' ? '_total' : ''}`
}

function labelText(pairs, extra) {
  const all = extra === undefined ? pairs : [...pairs, ...extra]
  if (all.length === 0) return ''
  const parts = []
  for (let i = 0; i < all.length; i += 2) {
    const v = String(all[i + 1]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
    parts.push(`${all[i]}="${v}"`)
  }
  return `{${parts.join(',')}}`
}

function num(v) {
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  if (Number.isNaN(v)) return 'NaN'
  return String(v)
}

/**
 * The metrics of this process's fleetcache core(s) in the Prometheus text exposition format
 * (0.0.4): counters (`fleetcache_*_total`), gauges and histograms (`*_seconds`). Serve it from a
 * route (docs/operating.md, "Metrics"). With `options`, only that configuration's core; without, every
 * core the process created (labelled `prefix` when there are several).
 */
function metrics(options) {
  const families = new Map()
  for (const s of samples(options)) {
    const name = familyName(s)
    let f = families.get(name)
    if (f === undefined) {
      f = { help: s.help, kind: s.kind, samples: [] }
      families.set(name, f)
    }
    f.samples.push(s)
  }
  const lines = []
  for (const [name, f] of families) {
    lines.push(`# HELP ${name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`)
    lines.push(`# TYPE ${name} ${f.kind}`)
    for (const s of f.samples) {
      if (s.kind !== 'histogram') {
        lines.push(`${name}${labelText(s.labels)} ${num(s.value)}`)
        continue
      }
      for (let i = 0; i < s.bucketBounds.length; i++) {
        lines.push(`${name}_bucket${labelText(s.labels, ['le', num(s.bucketBounds[i])])} ${s.bucketCounts[i]}`)
      }
      lines.push(`${name}_sum${labelText(s.labels)} ${num(s.sum)}`)
      lines.push(`${name}_count${labelText(s.labels)} ${num(s.value)}`)
    }
  }
  return lines.join('\n') + '\n'
}

/** The `Content-Type` of `metrics()`'s text. */
const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/**
 * Reports fleetcache's metrics through OpenTelemetry, for apps that use `@opentelemetry/api`
 * (with an SDK MeterProvider registered): one observable instrument per family, read when the
 * SDK collects. `api` defaults to the app's own `@opentelemetry/api`; returns false (and does
 * nothing) when there is none. Histograms are reported as their `_sum` and `_count` counters
 * (asynchronous instruments cannot carry buckets); Prometheus text has the buckets.
 */
function registerOpenTelemetry(api, options) {
  if (api === undefined) {
    try {
      api = require(require.resolve('@opentelemetry/api', { paths: [process.cwd(), __dirname] }))
    } catch {
      return false
    }
  }
  if (api === null || typeof api !== 'object' || api.metrics === null || typeof api.metrics !== 'object' || typeof api.metrics.getMeter !== 'function') {
    throw new FleetCacheError('FLEETCACHE_INVALID_INPUT', `registerOpenTelemetry(api): api must be the @opentelemetry/api module (with metrics.getMeter), got ${api === null ? 'null' : typeof api}`)
  }
  const meter = api.metrics.getMeter('fleetcache', require('../package.json').version)
  // One reading per collection, shared by every instrument's callback (dropped on the next turn).
  let reading
  const current = () => {
    if (reading === undefined) {
      reading = samples(options)
      setImmediate(() => {
        reading = undefined
      })
    }
    return reading
  }
  const attrs = (labels) => {
    const o = {}
    for (let i = 0; i < labels.length; i += 2) o[labels[i]] = labels[i + 1]
    return o
  }
  // Families known now, and those that appear once the S3/DynamoDB clients exist.
  const families = new Map(samples(options).map((x) => [x.name, [x.kind, x.help]]))
  // (their names and help come from the core: metrics::LATE_FAMILIES)
  for (const { name, kind, help } of binding.lateMetricFamilies()) if (!families.has(name)) families.set(name, [kind, help])
  for (const [name, [kind, help]] of families) {
    const parts = kind === 'histogram' ? [['.sum', 'sum'], ['.count', 'value']] : [['', 'value']]
    for (const [suffix, field] of parts) {
      const inst =
        kind === 'gauge'
          ? meter.createObservableGauge(`fleetcache.${name}${suffix}`, { description: help })
          : meter.createObservableCounter(`fleetcache.${name}${suffix}`, { description: help })
      inst.addCallback((result) => {
        for (const x of current()) if (x.name === name) result.observe(x[field], attrs(x.labels))
      })
    }
  }
  return true
}

module.exports = { metrics, METRICS_CONTENT_TYPE, registerOpenTelemetry, samples }
