#!/usr/bin/env node
// Renders docs/img/dashboard.png: the panels of examples/grafana/fleetcache.json as a real
// Prometheus computes them over a short run of three fleetcache instances (local S3 + DynamoDB):
// traffic on every instance, a revalidation every 2 s from one of them, and one instance stopped
// (SIGSTOP) for 20 s and continued. Not a Grafana screenshot (Grafana is not in the package
// registries this project installs from): the same queries, evaluated by Prometheus, drawn with
// matplotlib in the dashboard's layout. Rate windows are [30s] instead of [5m] (a short run).
//
// Needs what the tests do, plus: `apt-get install prometheus` and a Python with matplotlib
// (`FLEETCACHE_SHOT_PYTHON`, default /root/.cache/fleetcache/shot-venv/bin/python). Not part of
// `npm test`.
//
//   node scripts/dashboard-snapshot.mjs [--seconds 150] [--out docs/img/dashboard.png]
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawn, spawnSync } from 'node:child_process'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import { startLocalAws } from './local-aws.mjs'
import { startInstance } from './fleet.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const { values: o } = parseArgs({ options: { seconds: { type: 'string', default: '150' }, out: { type: 'string', default: 'docs/img/dashboard.png' } } })
const seconds = Number(o.seconds)
const python = process.env.FLEETCACHE_SHOT_PYTHON || '/root/.cache/fleetcache/shot-venv/bin/python'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
Object.assign(process.env, { AWS_EC2_METADATA_DISABLED: 'true', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' })

const fc = createRequire(import.meta.url)('../index.js')
const aws = await startLocalAws()
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetcache-shot-'))
const run = Date.now().toString(36)
const options = { bucket: `shot-${run}`, table: `shot-${run}`, s3Endpoint: aws.endpoint, dynamodbEndpoint: aws.endpoint, region: 'us-east-1', heartbeatMs: 5_000 }
await fc._coreFor({ ...options, feedIntervalMs: 0 }).ensureResources()
const names = ['web-a', 'web-b', 'web-c']
const insts = []
for (const [i, name] of names.entries()) insts.push(await startInstance(options, { ...aws.env, HOSTNAME: name }))
const ports = [9301, 9302, 9303]
await Promise.all(insts.map((x, i) => x.call('serveMetrics', { port: ports[i] })))
fs.writeFileSync(path.join(dir, 'prometheus.yml'), `global: { scrape_interval: 2s, evaluation_interval: 2s }
scrape_configs:
  - job_name: fleetcache
    static_configs:
${ports.map((p, i) => `      - targets: ['127.0.0.1:${p}']\n        labels: { instance: '${names[i]}' }`).join('\n')}
`)
const prom = spawn('prometheus', [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, '--web.listen-address=127.0.0.1:9399'], { stdio: 'ignore' })
const started = Math.floor(Date.now() / 1000)
try {
  const traffic = insts.map((x) => x.call('traffic', { seconds, rate: 200 }))
  const revalidations = (async () => {
    for (let t = 0; t < seconds; t += 2) {
      await insts[0].call('revalidateTag', { tags: [`shot-/shot/${Math.floor(Math.random() * 50)}`] })
      if (t % 20 === 0) await insts[0].call('revalidateTag', { tags: ['shot'] })
      await sleep(2_000)
    }
  })()
  await sleep((seconds * 1000) / 2)
  process.kill(insts[2].child.pid, 'SIGSTOP')
  await sleep(20_000)
  process.kill(insts[2].child.pid, 'SIGCONT')
  await Promise.all([...traffic, revalidations])
  await sleep(6_000)
  const end = Math.floor(Date.now() / 1000)
  const dash = JSON.parse(fs.readFileSync(path.join(root, 'examples', 'grafana', 'fleetcache.json'), 'utf8'))
  const panels = []
  for (const p of dash.panels) {
    const series = []
    for (const t of p.targets || []) {
      const q = t.expr.replaceAll('[5m]', '[30s]')
      const url = `http://127.0.0.1:9399/api/v1/query_range?query=${encodeURIComponent(q)}&start=${started}&end=${end}&step=2`
      const r = await (await fetch(url)).json()
      if (r.status !== 'success') throw new Error(`${q}: ${JSON.stringify(r)}`)
      for (const s of r.data.result) {
        const legend = (t.legendFormat || '').replace(/\{\{(\w+)\}\}/g, (_, k) => s.metric[k] ?? '') || Object.entries(s.metric).filter(([k]) => k !== '__name__' && k !== 'job').map(([k, v]) => `${k}=${v}`).join(' ') || q.slice(0, 40)
        series.push({ legend, points: s.values.map(([at, v]) => [at - started, Number(v)]) })
      }
    }
    panels.push({ title: p.title, gridPos: p.gridPos, unit: p.fieldConfig?.defaults?.unit, series })
  }
  const data = path.join(dir, 'panels.json')
  fs.writeFileSync(data, JSON.stringify({ title: dash.title, seconds: end - started, panels }))
  const out = path.resolve(root, o.out)
  fs.mkdirSync(path.dirname(out), { recursive: true })
  const r = spawnSync(python, [path.join(root, 'scripts', 'dashboard-snapshot.py'), data, out], { stdio: 'inherit' })
  if (r.status !== 0) throw new Error('rendering failed')
  console.log(`[snapshot] ${out}: ${panels.length} panels, ${panels.reduce((n, p) => n + p.series.length, 0)} series over ${end - started} s`)
} finally {
  prom.kill()
  await Promise.all(insts.map((x) => x.stop()))
  await aws.stop()
}
process.exit(0)
