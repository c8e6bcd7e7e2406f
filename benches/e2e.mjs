#!/usr/bin/env node
// `npm run bench:e2e [-- --quick] [-- --seconds N] [-- --rounds N]`: requests per second of a Next
// app under `next start` with each cache handler, all cache HITs, load from autocannon on
// loopback (-c 16). Not part of `npm test`.
//
// The app (benches/e2e/app: ISR pages of 5 KB, 135 KB and 1 MB, and a cached route handler) is
// copied to .local/bench-e2e/app and installed as a user would: fleetcache from its packed
// tarballs, the peers from the registry at the versions its package.json pins. One `next build`,
// then one `next start` per handler (BENCH_HANDLER), all up at once, each URL warmed until it is
// a HIT; the slices of load interleave: per round, per URL, each handler for `--seconds` (order
// rotating), so the machine's drift lands on every handler alike. The local servers: moto for fleetcache's S3 + DynamoDB (scripts/local-aws.mjs) and Debian's
// redis-server for forte (installed with apt-get when missing), both on 127.0.0.1.
//
// `--handlers a,b` and `--urls /x,/y` measure a part only.
// Prints one table per URL (median req/s of the rounds with their spread, p50/p99 latency) and
// the ratios the README and BENCHMARKS.md quote; writes .local/bench-e2e/results.json.
import { spawn, spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startLocalAws } from '../scripts/local-aws.mjs'
import { localFleetEnv } from '../scripts/next-fleet.mjs'
import { packAll, hostTarget } from '../scripts/pack.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const work = path.join(root, '.local', 'bench-e2e')
const app = path.join(work, 'app')
const argv = process.argv.slice(2)
const quick = argv.includes('--quick')
const arg = (name, dflt) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : dflt)
const SECONDS = arg('--seconds', quick ? 3 : 5)
const ROUNDS = arg('--rounds', quick ? 1 : 5)
const CONNECTIONS = 16
const ALL_HANDLERS = ['builtin', 'map', 'map-hook', 'fleetcache', 'fleetcache-hook', 'forte']
const HANDLERS = argv.includes('--handlers') ? argv[argv.indexOf('--handlers') + 1].split(',').filter((h) => ALL_HANDLERS.includes(h)) : ALL_HANDLERS
const URLS = argv.includes('--urls') ? argv[argv.indexOf('--urls') + 1].split(',') : ['/isr/5k', '/isr/135k', '/isr/1m', '/api/cached']
const REDIS_PORT = 6390
const PORT = 3310

const log = (m) => console.log(`[bench:e2e] ${m}`)

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status})`)
  return r
}

/** The app's sources into .local/bench-e2e/app, its packages installed (once per content). */
function install() {
  fs.mkdirSync(app, { recursive: true })
  for (const f of fs.readdirSync(path.join(root, 'benches', 'e2e', 'app'))) {
    fs.rmSync(path.join(app, f), { recursive: true, force: true })
    fs.cpSync(path.join(root, 'benches', 'e2e', 'app', f), path.join(app, f), { recursive: true })
  }
  const packed = packAll({ dest: path.join(work, 'tarballs'), targets: [hostTarget()] })
  const tarballs = [packed.main.tarball, ...Object.values(packed.platforms).map((p) => p.tarball)]
  const hash = crypto.createHash('sha256')
  for (const f of [path.join(app, 'package.json'), ...tarballs]) hash.update(fs.readFileSync(f))
  const marker = path.join(work, '.installed')
  const want = hash.digest('hex')
  if (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === want) return
  log('installing the app (next, the peers, fleetcache from its tarballs)')
  sh('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app })
  sh('npm', ['install', '--no-audit', '--no-fund', '--no-save', '--loglevel=error', ...tarballs], { cwd: app })
  fs.writeFileSync(marker, want)
}

/** Debian's redis-server on 127.0.0.1:REDIS_PORT, no persistence. */
async function startRedis() {
  if (spawnSync('sh', ['-c', 'command -v redis-server']).status !== 0) {
    log('apt-get install redis-server')
    const root_ = typeof process.getuid === 'function' && process.getuid() === 0
    const apt = (a) => (root_ ? sh('apt-get', a) : sh('sudo', ['-E', 'apt-get', ...a]))
    apt(['update', '-qq'])
    apt(['install', '-y', '-qq', 'redis-server'])
  }
  const child = spawn('redis-server', ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  for (let i = 0; i < 50; i++) {
    if (spawnSync('redis-cli', ['-p', String(REDIS_PORT), 'ping'], { encoding: 'utf8' }).stdout?.trim() === 'PONG') break
    await new Promise((r) => setTimeout(r, 100))
  }
  return { url: `redis://127.0.0.1:${REDIS_PORT}`, stop: () => child.kill('SIGTERM') }
}

const nextBin = () => path.join(app, 'node_modules', 'next', 'dist', 'bin', 'next')

async function startNext(env, port = PORT) {
  const child = spawn(process.execPath, [nextBin(), 'start', '-H', '127.0.0.1', '-p', String(port)], { cwd: app, env, stdio: ['ignore', 'ignore', 'inherit'], detached: true })
  const until = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`next start exited with ${child.exitCode}`)
    try {
      if ((await fetch(`http://127.0.0.1:${port}/api/ready`)).ok) break
    } catch {}
    if (Date.now() > until) throw new Error('next start did not answer')
    await new Promise((r) => setTimeout(r, 200))
  }
  const stop = async () => {
    const done = new Promise((r) => child.once('exit', r))
    try { process.kill(-child.pid, 'SIGTERM') } catch {}
    await Promise.race([done, new Promise((r) => setTimeout(r, 5000))])
    try { process.kill(-child.pid, 'SIGKILL') } catch {}
  }
  return { stop, pid: child.pid }
}

/** CPU time (µs, user + system) of process `pid` and its descendants, from /proc (Linux). */
function cpuMicros(pid) {
  let total = 0
  const walk = (p) => {
    try {
      const f = fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ')
      total += (Number(f[11]) + Number(f[12])) * (1e6 / 100)
      for (const c of fs.readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) walk(Number(c))
    } catch {}
  }
  walk(pid)
  return total
}

/** Requests `url` until Next answers it from the cache (x-nextjs-cache: HIT). */
async function warm(url) {
  let last = ''
  for (let i = 0; i < 50; i++) {
    const res = await fetch(url)
    await res.arrayBuffer()
    last = `${res.status} ${res.headers.get('x-nextjs-cache')}`
    if (res.status === 200 && res.headers.get('x-nextjs-cache') === 'HIT') {
      for (let j = 0; j < 20; j++) await (await fetch(url)).arrayBuffer() // JIT warm-up
      return
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${url} never became a HIT (last: ${last})`)
}

/** One slice of load; `cpuUs`: the server's CPU time per request (less sensitive to a busy neighbour than req/s). */
async function load(autocannon, url, pid) {
  const c0 = cpuMicros(pid)
  const r = await autocannon({ url, connections: CONNECTIONS, duration: SECONDS })
  const cpuUs = (cpuMicros(pid) - c0) / Math.max(1, r.requests.total)
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors`)
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, bytes: r.throughput.average, cpuUs }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function main() {
  install()
  const req = createRequire(path.join(app, 'package.json'))
  const autocannon = req('autocannon')
  const aws = await startLocalAws()
  const redis = await startRedis()
  const name = `bench-e2e-${Date.now().toString(36)}`
  const base = localFleetEnv(aws.endpoint, name, { NODE_ENV: 'production', REDIS_URL: redis.url })
  delete base.FLEETCACHE_E2E_BUILTIN
  const fc = createRequire(import.meta.url)('../index.js')
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_EC2_METADATA_DISABLED: 'true' })
  await fc._coreFor({ feedIntervalMs: 0, bucket: name, table: name, s3Endpoint: aws.endpoint, dynamodbEndpoint: aws.endpoint, region: 'us-east-1' }).ensureResources()
  const results = []
  try {
    log('next build')
    sh(process.execPath, [nextBin(), 'build'], { cwd: app, env: { ...base, BENCH_HANDLER: 'builtin' }, stdio: ['ignore', 'ignore', 'inherit'] })
    // Every handler's server runs at once (an idle one costs next to nothing), so the slices of
    // load can interleave finely: per round, per URL, each handler in turn (rotating order). The
    // machine's own drift then lands on all handlers alike.
    const servers = {}
    try {
      // startNext waits for /api/ready, a dynamic route: every server has rendered before it is
      // measured. That matters on Node 20: the first render turns on AsyncLocalStorage's promise
      // hooks for the life of the process (a cost on every promise after it), and a server that
      // only ever served prerendered pages from its cache would be measured without it.
      for (const [i, handler] of HANDLERS.entries()) {
        servers[handler] = { port: PORT + i, ...(await startNext({ ...base, BENCH_HANDLER: handler }, PORT + i)) }
        for (const u of URLS) await warm(`http://127.0.0.1:${PORT + i}${u}`)
      }
      for (let round = 1; round <= ROUNDS; round++) {
        for (const [j, u] of URLS.entries()) {
          const order = HANDLERS.map((_, i) => HANDLERS[(i + round + j - 1) % HANDLERS.length])
          for (const handler of order) {
            const m = await load(autocannon, `http://127.0.0.1:${servers[handler].port}${u}`, servers[handler].pid)
            results.push({ round, handler, url: u, ...m })
            log(`round ${round} ${handler.padEnd(15)} ${u.padEnd(12)} ${m.rps.toFixed(0).padStart(6)} req/s  p50 ${m.p50} ms  p99 ${m.p99} ms  ${m.cpuUs.toFixed(0)} µs CPU/req`)
          }
        }
      }
      for (const h of ['fleetcache', 'fleetcache-hook']) {
        if (!servers[h]) continue
        const st = await (await fetch(`http://127.0.0.1:${servers[h].port}/api/stats`)).json()
        log(`${h} stats: ${JSON.stringify(st)}`)
      }
    } finally {
      for (const sv of Object.values(servers)) await sv.stop()
    }
  } finally {
    redis.stop()
    await aws.stop()
  }
  fs.writeFileSync(path.join(work, 'results.json'), JSON.stringify({ when: new Date().toISOString(), seconds: SECONDS, rounds: ROUNDS, connections: CONNECTIONS, cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, results }, null, 2))
  report(results)
}

/** The Map handler each handler is held against: the one reaching Next the same way. */
const MAP_OF = { fleetcache: 'map', 'fleetcache-hook': 'map-hook', map: 'map', 'map-hook': 'map', builtin: 'map', forte: 'map' }

function report(results) {
  const pick = (h, u) => results.filter((r) => r.handler === h && r.url === u)
  // A ratio of two handlers is taken per round (their slices ran back to back), then the median
  // of the rounds: the machine's drift between rounds cancels out.
  const paired = (h, other, u, field = 'rps') => {
    const a = pick(h, u)
    const b = pick(other, u)
    const rs = a.map((r) => {
      const o = b.find((x) => x.round === r.round)
      return o ? (field === 'rps' ? r.rps / o.rps : o.cpuUs / r.cpuUs) : undefined
    }).filter((x) => x !== undefined)
    return rs.length ? { med: median(rs), lo: Math.min(...rs), hi: Math.max(...rs) } : undefined
  }
  const fmt = (p) => (p ? `${p.med.toFixed(2)}× (${p.lo.toFixed(2)}–${p.hi.toFixed(2)})` : '')
  console.log(`\n${ROUNDS} round(s) of ${SECONDS} s per URL, autocannon -c ${CONNECTIONS}, ${os.cpus().length} cores (${os.cpus()[0]?.model}), Node ${process.version}\n`)
  console.log('Ratios are per round, then the median of the rounds (range in brackets); "CPU" is the server\'s CPU time per request, and its ratio is the Map\'s over this one (above 1 = cheaper).\n')
  console.log('| URL | handler | req/s (median) | spread | p50 ms | p99 ms | CPU µs/req | vs its Map (req/s) | vs its Map (CPU) | vs built-in | vs forte |')
  console.log('|---|---|---:|---|---:|---:|---:|---|---|---|---|')
  for (const u of URLS) {
    for (const h of HANDLERS) {
      const rs = pick(h, u)
      const xs = rs.map((r) => r.rps)
      const m = MAP_OF[h]
      const vsMap = h !== m && HANDLERS.includes(m)
      console.log(`| ${u} | ${h} | ${median(xs).toFixed(0)} | ${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)} | ${median(rs.map((r) => r.p50))} | ${median(rs.map((r) => r.p99))} | ${median(rs.map((r) => r.cpuUs)).toFixed(0)} | ${vsMap ? `${fmt(paired(h, m, u))} vs ${m}` : ''} | ${vsMap ? fmt(paired(h, m, u, 'cpu')) : ''} | ${h !== 'builtin' && HANDLERS.includes('builtin') ? fmt(paired(h, 'builtin', u)) : ''} | ${h !== 'forte' && HANDLERS.includes('forte') ? fmt(paired(h, 'forte', u)) : ''} |`)
    }
  }
}

main().catch((e) => {
  console.error(`[bench:e2e] ${e.stack || e}`)
  process.exit(1)
})
