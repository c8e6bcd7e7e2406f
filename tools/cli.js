#!/usr/bin/env node
'use strict'
// The `fleetcache` command: deploy-time tools around the shared store.
//
//   fleetcache seed [distDir]         put the build's prerendered pages into the store
//   fleetcache prune --keep N         delete entries of all but the newest N builds
//   fleetcache doctor                 check credentials, bucket, table and permissions
//
// The store is named as for the cache handler: FLEETCACHE_BUCKET, FLEETCACHE_TABLE,
// FLEETCACHE_PREFIX, AWS_REGION, AWS_ENDPOINT_URL… or the flags below.

const USAGE = `usage:
  fleetcache seed [distDir] [--concurrency N]    (distDir defaults to .next)
  fleetcache prune --keep N [--dry-run]
  fleetcache doctor

store options (else the FLEETCACHE_* / AWS_* environment variables):
  --bucket NAME  --table NAME  --prefix PREFIX  --region REGION  --endpoint URL
  --json         print the report as JSON on stdout`

const FLAGS = {
  '--bucket': 'bucket',
  '--table': 'table',
  '--prefix': 'prefix',
  '--region': 'region',
  '--endpoint': 'endpoint',
  '--concurrency': 'concurrency',
  '--keep': 'keep',
}
const SWITCHES = { '--dry-run': 'dryRun', '--json': 'json', '--help': 'help', '-h': 'help' }

class UsageError extends Error {}

function parse(argv) {
  const args = { positional: [] }
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]
    let v
    const eq = a.indexOf('=')
    if (a.startsWith('--') && eq !== -1) {
      v = a.slice(eq + 1)
      a = a.slice(0, eq)
    }
    if (FLAGS[a]) {
      if (v === undefined) v = argv[++i]
      if (v === undefined || v.startsWith('--')) throw new UsageError(`${a} needs a value`)
      args[FLAGS[a]] = v
    } else if (SWITCHES[a]) {
      args[SWITCHES[a]] = true
    } else if (a.startsWith('-')) {
      throw new UsageError(`unknown option ${a}`)
    } else {
      args.positional.push(a)
    }
  }
  return args
}

function storeOptions(args) {
  const o = {}
  for (const k of ['bucket', 'table', 'prefix', 'region']) if (args[k] !== undefined) o[k] = args[k]
  if (args.endpoint !== undefined) {
    o.s3Endpoint = args.endpoint
    o.dynamodbEndpoint = args.endpoint
  }
  return o
}

function int(args, name, min) {
  const v = args[name]
  const n = Number(v)
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`)
  return n
}

async function main(argv) {
  const args = parse(argv)
  const [command, ...rest] = args.positional
  if (args.help || command === undefined || command === 'help') {
    console.log(USAGE)
    return command === undefined && !args.help ? 2 : 0
  }
  const fc = require('./index.js')
  const options = storeOptions(args)
  const out = (report, text) => (args.json ? console.log(JSON.stringify(report, null, 2)) : console.log(text))

  if (command === 'seed') {
    if (rest.length > 1) throw new UsageError('seed takes one directory')
    const concurrency = args.concurrency === undefined ? 16 : int(args, 'concurrency', 1)
    const r = await fc.seed(rest[0] || '.next', options, { concurrency })
    const lines = [
      `seeded build ${r.buildId}: ${r.total} entries, ${r.written} written, ${r.existing} already there, ${r.failed.length} failed`,
      ...r.skipped.map((s) => `  skipped ${s.path}: ${s.why}`),
      ...r.failed.map((f) => `  FAILED ${f.path} (${f.key}): ${f.message}`),
    ]
    out(r, lines.join('\n'))
    return r.failed.length === 0 ? 0 : 1
  }
  if (command === 'prune') {
    if (args.keep === undefined) throw new UsageError('prune needs --keep N (how many of the newest builds to keep)')
    const keep = int(args, 'keep', 1)
    const r = await fc.prune({ keep, dryRun: Boolean(args.dryRun) }, options)
    const verb = args.dryRun ? 'would delete' : 'deleted'
    const lines = [
      `kept ${r.kept.length} build(s): ${r.kept.map((b) => b.buildId).join(', ') || '(none registered)'}`,
      ...r.pruned.map((p) => `${verb} build ${p.buildId} (last ran ${new Date(p.lastActiveAt).toISOString()}): ${p.objects} objects`),
    ]
    out(r, lines.join('\n'))
    return 0
  }
  if (command === 'doctor') {
    let checks
    try {
      checks = await fc.doctor(options)
    } catch (err) {
      checks = [{ name: 'config', ok: false, detail: err.message, fix: 'set FLEETCACHE_BUCKET and FLEETCACHE_TABLE (or --bucket/--table) and fix the option named above' }]
    }
    const lines = checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}${c.fix ? `\n     fix: ${c.fix}` : ''}`)
    const failed = checks.filter((c) => !c.ok).length
    lines.push(failed === 0 ? 'everything fleetcache needs is in place' : `${failed} problem(s) found`)
    out(checks, lines.join('\n'))
    return failed === 0 ? 0 : 1
  }
  throw new UsageError(`unknown command ${JSON.stringify(command)}`)
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      if (err instanceof UsageError) {
        console.error(`fleetcache: ${err.message}\n\n${USAGE}`)
        process.exit(2)
      }
      console.error(`fleetcache: ${err && err.code ? `${err.code}: ` : ''}${err && err.message ? err.message : err}`)
      process.exit(1)
    },
  )
}

module.exports = { main, parse }
