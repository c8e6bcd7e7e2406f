#!/usr/bin/env node
'use strict'
// The `fleetcache` command: deploy-time and operations tools around the shared store.
//
//   fleetcache seed [distDir]          put the build's prerendered pages into the store
//   fleetcache prune --keep N          delete entries of all but the newest N builds
//   fleetcache doctor                  check credentials, bucket, table and permissions
//   fleetcache inspect <path|key>      show what the store holds for a page or cache key
//   fleetcache purge --tag t | --path p   purge the CDN (CloudFront) for tags or pages
//   fleetcache revalidate --tag t [--wait]   revalidate across the fleet, with its receipt
//   fleetcache status [--watch]        the live instances, their builds and how far they read the feed
//
// Each command has its own flags (node's util.parseArgs, strict): an unknown flag is an error
// naming the nearest known one. The store is named as for the cache handler: FLEETCACHE_BUCKET,
// FLEETCACHE_TABLE, FLEETCACHE_PREFIX, AWS_REGION, AWS_ENDPOINT_URL… or the store flags.

const { parseArgs } = require('node:util')

const STORE = {
  bucket: { type: 'string', help: 'S3 bucket (else FLEETCACHE_BUCKET)' },
  table: { type: 'string', help: 'DynamoDB table (else FLEETCACHE_TABLE)' },
  prefix: { type: 'string', help: 'key prefix (else FLEETCACHE_PREFIX, default fleetcache)' },
  region: { type: 'string', help: 'AWS region (else AWS_REGION / the profile)' },
  endpoint: { type: 'string', help: 'S3 and DynamoDB endpoint URL (local servers; else AWS_ENDPOINT_URL)' },
  json: { type: 'boolean', help: 'print the report as JSON on stdout' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
}

const COMMANDS = {
  seed: {
    args: '[distDir]',
    summary: "put the build's prerendered pages into the store (distDir defaults to .next)",
    options: {
      concurrency: { type: 'string', help: 'parallel writes (default 16)' },
      'dry-run': { type: 'boolean', help: 'list what would be written; write nothing' },
      ...STORE,
    },
    maxPositionals: 1,
  },
  prune: {
    args: '--keep N',
    summary: 'delete the entries of all but the N builds that ran last',
    options: {
      keep: { type: 'string', help: 'how many of the newest builds to keep (required)' },
      'dry-run': { type: 'boolean', help: 'list what would be deleted; delete nothing' },
      ...STORE,
    },
    maxPositionals: 0,
  },
  status: {
    args: '',
    summary: 'the live fleet: each instance (build, age, feed lag, breakers, memory, hit ratio) and each build',
    options: { watch: { type: 'boolean', help: 'refresh every 2 s (on a terminal)' }, ...STORE },
    maxPositionals: 0,
  },
  doctor: {
    args: '',
    summary: 'check credentials, region, bucket, table and every permission the cache needs',
    options: { ...STORE },
    maxPositionals: 0,
  },
  inspect: {
    args: '<path|key>',
    summary: 'decode what the store holds for a URL path (/isr) or a cache key',
    options: {
      'build-id': { type: 'string', help: 'build whose pages to look at (default: the one that ran last)' },
      ...STORE,
    },
    minPositionals: 1,
    maxPositionals: 1,
  },
  purge: {
    args: '--tag t | --path p',
    summary: "purge the CDN's copies of tags' pages or of paths: the plan, its path count and cost, then the requests sent",
    options: {
      tag: { type: 'string', multiple: true, help: 'a tag whose pages to purge (the tag index; repeatable)' },
      path: { type: 'string', multiple: true, help: 'a page (purged with its RSC variants) or a path ending in * (repeatable)' },
      'distribution-id': { type: 'string', help: 'CloudFront distribution (else FLEETCACHE_CLOUDFRONT_DISTRIBUTION_ID)' },
      'dry-run': { type: 'boolean', help: 'show the plan; send nothing' },
      ...STORE,
    },
    maxPositionals: 0,
  },
  revalidate: {
    args: '--tag t | --path p [--max] [--wait]',
    summary: 'revalidate tags or pages across the fleet; with --wait, the receipt: which live instances applied it, and when',
    options: {
      tag: { type: 'string', multiple: true, help: 'a tag to revalidate (repeatable)' },
      path: { type: 'string', multiple: true, help: 'a page to revalidate, as revalidatePath (repeatable)' },
      max: { type: 'boolean', help: "revalidateTag(t, 'max'): stale now, regenerated in the background" },
      wait: { type: 'boolean', help: 'wait until every live instance applied it; exit 1 when one did not in time' },
      timeout: { type: 'string', help: 'how long --wait waits, in ms (default 10000)' },
      ...STORE,
    },
    maxPositionals: 0,
  },
}

class UsageError extends Error {
  constructor(message, command) {
    super(message)
    this.command = command
  }
}

function version() {
  return require('../package.json').version
}

function usage() {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => `${c} ${COMMANDS[c].args}`.length))
  return [
    'usage: fleetcache <command> [options]',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([c, d]) => `  ${`${c} ${d.args}`.padEnd(width)}  ${d.summary}`),
    '',
    'fleetcache <command> --help shows its options; fleetcache --version prints the version.',
  ].join('\n')
}

function commandUsage(name) {
  const d = COMMANDS[name]
  const flags = Object.entries(d.options).map(([k, o]) => [`--${k}${o.type === 'string' ? ' VALUE' : ''}${o.short ? `, -${o.short}` : ''}`, o.help])
  const width = Math.max(...flags.map((f) => f[0].length))
  return [`usage: fleetcache ${name} ${d.args}`.trimEnd(), '', d.summary, '', 'options:', ...flags.map(([f, h]) => `  ${f.padEnd(width)}  ${h}`)].join('\n')
}

/** Optimal-string-alignment distance, for "did you mean". */
function distance(a, b) {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0][j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1)
    }
  }
  return d[a.length][b.length]
}

function nearest(word, candidates) {
  let best
  for (const c of candidates) {
    const dist = distance(word, c)
    if (dist <= Math.max(1, Math.floor(Math.max(word.length, c.length) / 3)) && (best === undefined || dist < best[0])) best = [dist, c]
  }
  return best && best[1]
}

/** `argv` → `{ command, values, positionals }`, or a UsageError naming what is wrong. */
function parse(argv) {
  if (argv.length === 0) throw new UsageError('no command given')
  const [first, ...rest] = argv
  if (first === '--version' || first === '-v') return { command: 'version' }
  if (first === '--help' || first === '-h' || first === 'help') return { command: 'help', topic: rest[0] }
  if (first.startsWith('-')) throw new UsageError(`${first}: the command comes first`)
  const d = COMMANDS[first]
  if (d === undefined) {
    const near = nearest(first, Object.keys(COMMANDS))
    throw new UsageError(`unknown command ${JSON.stringify(first)}${near ? ` (did you mean \`${near}\`?)` : ''}`)
  }
  // `--dry-run=false` must not mean true: boolean flags take no value.
  for (const a of rest) {
    const m = /^--([^=]+)=/.exec(a)
    if (m && d.options[m[1]] && d.options[m[1]].type === 'boolean') {
      throw new UsageError(`--${m[1]} takes no value (leave it out for false)`, first)
    }
  }
  const options = Object.fromEntries(
    Object.entries(d.options).map(([k, o]) => [k, { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) }]),
  )
  let parsed
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true })
  } catch (err) {
    const m = /Unknown option '(-{1,2}[^']+)'/.exec(err.message)
    if (m) {
      const flag = m[1].replace(/^-+/, '')
      const near = nearest(flag, Object.keys(d.options))
      throw new UsageError(`${first}: unknown option ${m[1]}${near ? ` (did you mean --${near}?)` : ''}`, first)
    }
    const missing = /Option '(-[^']+)' argument missing/.exec(err.message)
    if (missing) throw new UsageError(`${first}: ${missing[1].replace(/ <value>$/, '').replace(/^-[a-z], /, '')} needs a value`, first)
    throw new UsageError(`${first}: ${err.message}`, first)
  }
  const { values, positionals } = parsed
  if (values.help) return { command: 'help', topic: first }
  for (const [k, v] of Object.entries(values)) {
    if (typeof v === 'string' && v.startsWith('--')) throw new UsageError(`${first}: --${k} needs a value, got ${v}`, first)
  }
  if (positionals.length > d.maxPositionals) {
    throw new UsageError(`${first} takes ${d.maxPositionals === 0 ? 'no arguments' : `at most ${d.maxPositionals} argument`}, got ${positionals.map((p) => JSON.stringify(p)).join(' ')}`, first)
  }
  if (positionals.length < (d.minPositionals || 0)) throw new UsageError(`${first} needs ${d.args}`, first)
  return { command: first, values, positionals }
}

function storeOptions(values) {
  const o = {}
  for (const k of ['bucket', 'table', 'prefix', 'region']) if (values[k] !== undefined) o[k] = values[k]
  if (values.endpoint !== undefined) {
    o.s3Endpoint = values.endpoint
    o.dynamodbEndpoint = values.endpoint
    o.cdn = { cloudfront: { endpoint: values.endpoint } }
  }
  return o
}

function int(values, name, min) {
  const v = values[name]
  const n = Number(v)
  if (v === undefined || !/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`)
  }
  return n
}

function kib(n) {
  return n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`
}

function ago(ms) {
  const s = Math.round(ms / 1000)
  if (s < 120) return `${s} s ago`
  if (s < 7200) return `${Math.round(s / 60)} min ago`
  return `${(s / 3600).toFixed(1)} h ago`
}

function describeEntry(e) {
  const cc = e.revalidateNever ? 'revalidate never' : e.revalidate !== undefined ? `revalidate ${e.revalidate} s` : 'no cacheControl'
  const tags = e.tags.length === 0
    ? ['  tags: none']
    : ['  tags:', ...e.tags.map((t) => {
        const states = []
        if (t.expiredAt) states.push(`expired at ${new Date(t.expiredAt).toISOString()}`)
        if (t.staleAt) states.push(`stale since ${new Date(t.staleAt).toISOString()}`)
        if (t.softExpireAt) states.push(`expires ${new Date(t.softExpireAt).toISOString()}`)
        return `    ${t.tag}: ${states.length ? states.join(', ') : 'never revalidated'}`
      })]
  return [
    `${e.key}`,
    `  kind ${e.kind}, build ${e.buildId}`,
    `  object ${e.objectKey}`,
    `  size ${kib(e.storedBytes)} stored, ${kib(e.decodedBytes)} in memory`,
    `  written ${new Date(e.lastModified).toISOString()} (${ago(e.ageMs)}), ${cc}${e.expire !== undefined ? `, expire ${e.expire} s` : ''}`,
    `  write ${e.writeId}; ${e.tagVerdict}`,
    ...tags,
  ].join('\n')
}

async function main(argv, out = console.log, err = console.error) {
  const { command, values, positionals, topic } = parse(argv)
  if (command === 'version') {
    out(version())
    return 0
  }
  if (command === 'help') {
    out(topic && COMMANDS[topic] ? commandUsage(topic) : usage())
    return 0
  }
  const tools = require('./index.js')
  const options = storeOptions(values)
  const report = (r, text) => out(values.json ? JSON.stringify(r, null, 2) : text)

  if (command === 'seed') {
    const concurrency = values.concurrency === undefined ? 16 : int(values, 'concurrency', 1)
    const dryRun = Boolean(values['dry-run'])
    const r = await tools.seed(positionals[0] || '.next', options, { concurrency, dryRun })
    const lines = dryRun
      ? [
          `dry run, nothing written: build ${r.buildId}: ${r.total} entries, ${r.wouldWrite.length} would be written, ${r.existing} already there`,
          ...r.wouldWrite.map((w) => `  would write ${w.path} (${w.kind}, ${kib(w.bytes)}) → ${w.objectKey}`),
          ...r.skipped.map((s) => `  skipped ${s.path}: ${s.why}`),
        ]
      : [
          `seeded build ${r.buildId}: ${r.total} entries, ${r.written} written, ${r.existing} already there, ${r.failed.length} failed`,
          ...r.skipped.map((s) => `  skipped ${s.path}: ${s.why}`),
          ...r.failed.map((f) => `  FAILED ${f.path} (${f.key}): ${f.message}`),
        ]
    report(r, lines.join('\n'))
    return r.failed.length === 0 ? 0 : 1
  }
  if (command === 'prune') {
    if (values.keep === undefined) throw new UsageError('prune needs --keep N (how many of the newest builds to keep)', 'prune')
    const keep = int(values, 'keep', 1)
    const dryRun = Boolean(values['dry-run'])
    const r = await tools.prune({ keep, dryRun }, options)
    const verb = dryRun ? 'would delete' : 'deleted'
    const lines = [
      `kept ${r.kept.length} build(s): ${r.kept.map((b) => b.buildId).join(', ') || '(none registered)'}`,
      ...r.pruned.map((p) => `${verb} build ${p.buildId} (last ran ${new Date(p.lastActiveAt).toISOString()}): ${p.objects} objects`),
      ...r.serving.map((id) => `kept build ${id}: an instance still serves it (live heartbeat)`),
    ]
    report(r, lines.join('\n'))
    return 0
  }
  if (command === 'revalidate') {
    const tags = values.tag || []
    const paths = values.path || []
    if (tags.length === 0 && paths.length === 0) throw new UsageError('revalidate needs --tag or --path', 'revalidate')
    const timeoutMs = values.timeout === undefined ? 10_000 : int(values, 'timeout', 0)
    // The receipt as it fills in: a line per instance as it applies the revalidation.
    const appliedLine = (i) => `  applied  ${i.id.slice(0, 12)}  ${i.host}  build ${i.buildId}  after ${i.appliedAfterMs} ms`
    const live = !values.json && values.wait
    if (live) console.log(`revalidating ${[...tags, ...paths].join(', ')}, waiting up to ${timeoutMs} ms for every live instance…`)
    const onApplied = live ? (i) => console.log(appliedLine(i)) : undefined
    const r = await tools.revalidate({ tags, paths, max: Boolean(values.max), wait: Boolean(values.wait), timeoutMs, onApplied }, options)
    if (!values.wait) {
      report({ ok: true }, `revalidated ${[...tags, ...paths].join(', ')} (recorded; every instance applies it within the feed's bound)`)
      return 0
    }
    const lines = [r.queued
      ? 'not recorded in DynamoDB in time: it stays queued here and lands later; no other instance has it yet'
      : `revalidated ${[...tags, ...paths].join(', ')}: feed event(s) ${r.events.join(', ')}`]
    if (!live) for (const i of r.instances) lines.push(appliedLine(i))
    for (const i of r.missing) lines.push(`  MISSING  ${i.id.slice(0, 12)}  ${i.host}  build ${i.buildId}: not applied within ${timeoutMs} ms`)
    lines.push(r.missing.length === 0 && !r.queued ? `every live instance (${r.instances.length}) applied it` : `${r.missing.length} live instance(s) did not apply it in time`)
    if (r.cdn) {
      const c = r.cdn
      const ids = c.invalidationIds.filter(Boolean)
      lines.push(c.sent
        ? `CDN: ${c.planned.length} path(s) purged${ids.length ? ` (invalidation ${ids.join(', ')})` : ''}`
        : `CDN: ${c.planned.length} path(s) planned, not all sent${c.error ? `: ${c.error}` : ' yet (window, in-progress limit or monthly ceiling)'}`)
    }
    report(r, lines.join('\n'))
    return r.missing.length === 0 && !r.queued ? 0 : 1
  }
  if (command === 'status') {
    for (;;) {
      const r = await tools.status(options)
      const text = statusText(r)
      if (!values.watch) {
        report(r, text)
        return 0
      }
      if (process.stdout.isTTY) process.stdout.write('\x1b[H\x1b[2J')
      console.log(values.json ? JSON.stringify(r) : `${text}\n(every 2 s; Ctrl-C to stop)`)
      await new Promise((res) => setTimeout(res, 2000))
    }
  }
  if (command === 'doctor') {
    let checks
    try {
      checks = await tools.doctor(options)
    } catch (e) {
      checks = [{ name: 'config', ok: false, warning: false, detail: e.message, fix: 'set FLEETCACHE_BUCKET and FLEETCACHE_TABLE (or --bucket/--table) and fix the option named above' }]
    }
    const lines = checks.map((c) => `${c.ok ? (c.warning ? 'warn' : 'ok  ') : 'FAIL'} ${c.name}: ${c.detail}${c.fix ? `\n     fix: ${c.fix}` : ''}`)
    const failed = checks.filter((c) => !c.ok).length
    const warned = checks.filter((c) => c.ok && c.warning).length
    lines.push(failed === 0 ? `everything fleetcache needs is in place${warned ? ` (${warned} warning(s))` : ''}` : `${failed} problem(s) found`)
    report(checks, lines.join('\n'))
    return failed === 0 ? 0 : 1
  }
  if (command === 'purge') {
    const tags = values.tag || []
    const paths = values.path || []
    if (tags.length === 0 && paths.length === 0) throw new UsageError('purge needs --tag or --path', 'purge')
    const dryRun = Boolean(values['dry-run'])
    const r = await tools.purge({ tags, paths, dryRun, distributionId: values['distribution-id'] }, options)
    const lines = [
      `${r.paths.length} path(s) asked for; ${r.batches.length} invalidation(s) planned, ${r.batches.reduce((n, b) => n + b.paths.length, 0)} path(s), estimated $${r.cost.toFixed(3)}${r.notSent ? `; ${r.notSent} not sent (CloudFront's in-progress limits or the monthly ceiling)` : ''}`,
    ]
    for (const b of r.batches) {
      const state = !r.sent ? 'dry run: not sent' : b.error ? `FAILED: ${b.error}` : b.invalidationId ? `sent: invalidation ${b.invalidationId}` : 'sent: completed'
      lines.push(`  ${b.paths.length} path(s) (${b.wildcards} wildcard${b.widened ? ', widened by the monthly ceiling' : ''}), $${b.cost.toFixed(3)} — ${state}`)
      for (const p of b.paths) lines.push(`    ${p}`)
    }
    report(r, lines.join('\n'))
    return r.batches.some((b) => b.error) ? 1 : 0
  }

  if (command === 'inspect') {
    const r = await tools.inspect(positionals[0], options, { buildId: values['build-id'] })
    const text = r.entries.length === 0
      ? `nothing stored for ${positionals[0]} (build ${r.buildId})`
      : r.entries.map(describeEntry).join('\n\n')
    report(r, text)
    return r.entries.length === 0 ? 1 : 0
  }
  /* c8 ignore next */
  throw new UsageError(`unknown command ${JSON.stringify(command)}`)
}

/** `fleetcache status` as a table: one line per instance, then one per build. */
function statusText(r) {
  if (r.instances.length === 0) return `no live instance (feed head ${r.head}); instances write a heartbeat every heartbeatMs once they read the feed`
  const secs = (ms) => `${Math.max(0, Math.round(ms / 1000))}s`
  const rows = [['instance', 'host', 'build', 'age', 'feed lag', 'trusted', 'breakers', 'memory', 'hit ratio', 'outbox']]
  for (const i of r.instances) {
    const open = [i.breakers.s3 && 's3', i.breakers.dynamodb && 'dynamodb'].filter(Boolean)
    const gets = i.hits + i.misses
    rows.push([
      i.id.slice(0, 12), i.host, i.buildId, secs(r.now - i.startedAt), `${Math.max(0, r.head - i.applied)} events`,
      i.trusted ? 'yes' : 'NO', open.length ? `OPEN: ${open.join(', ')}` : 'closed', `${(i.memoryBytes / 1048576).toFixed(1)} MiB`,
      gets ? `${((100 * i.hits) / gets).toFixed(1)}%` : '-', String(i.outboxDepth),
    ])
  }
  const width = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)))
  const lines = rows.map((row) => row.map((cell, c) => cell.padEnd(width[c])).join('  ').trimEnd())
  lines.push('', `feed head ${r.head}; ${r.outboxDepth} waiting in outboxes`, ...r.builds.map((b) => `build ${b.buildId}: ${b.instances} instance(s)`))
  return lines.join('\n')
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      if (err instanceof UsageError) {
        console.error(`fleetcache: ${err.message}\n\n${err.command ? commandUsage(err.command) : usage()}`)
        process.exit(2)
      }
      console.error(`fleetcache: ${err && err.code ? `${err.code}: ` : ''}${err && err.message ? err.message : err}`)
      process.exit(1)
    },
  )
}

module.exports = { main, parse, UsageError }
