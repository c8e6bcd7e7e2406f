// Issue 27: instances announce themselves (heartbeats); `fleetcache status` lists them by build;
// `prune` never removes a build a live instance serves. Against S3 + DynamoDB (moto).
import { describe, it, expect } from 'vitest'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { createRequire } from 'node:module'
import { fc } from './helpers.mjs'

const require = createRequire(import.meta.url)
const tools = require('../tools/index.js')
const root = path.resolve(import.meta.dirname, '..')
const ep = process.env.FLEETCACHE_TEST_ENDPOINT
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

describe.skipIf(!ep)('the fleet (heartbeats)', () => {
  const store = { bucket: `fc-fleet-${process.pid}`, table: `fc-fleet-${process.pid}`, s3Endpoint: ep, dynamodbEndpoint: ep, region: 'us-east-1', prefix: `fleet${Date.now()}` }

  it('status lists each live instance under its build; prune keeps a build an instance still serves', async () => {
    await fc._coreFor({ ...store, feedIntervalMs: 0 }).ensureResources()
    // Three builds registered in order: b1 (oldest), b2, b3.
    for (const buildId of ['b1', 'b2', 'b3']) {
      await fc._coreFor({ ...store, buildId, feedIntervalMs: 0 }).registerBuild()
      await sleep(5)
    }
    // An instance of b1 still serves (it reads the feed, so it beats); another of b3.
    const old = fc._coreFor({ ...store, buildId: 'b1', heartbeatMs: 60_000 })
    const cur = fc._coreFor({ ...store, buildId: 'b3', heartbeatMs: 60_000 })
    await old.beat()
    await cur.beat()

    const s = await tools.status(store)
    expect(s.instances.map((i) => i.buildId)).toEqual(['b1', 'b3'])
    expect(s.builds).toEqual([{ buildId: 'b1', instances: 1 }, { buildId: 'b3', instances: 1 }])
    expect(s.instances.every((i) => i.pid === process.pid && i.intervalMs === 60_000)).toBe(true)

    const r = await tools.prune({ keep: 1, progress: false }, store)
    expect(r.pruned.map((p) => p.buildId)).toEqual(['b2'])
    expect(r.serving).toEqual(['b1'])
    expect(r.kept.map((b) => b.buildId).sort()).toEqual(['b1', 'b3'])

    // The command: a table with both instances and a line per build; --json the same report.
    const env = { PATH: process.env.PATH, AWS_EC2_METADATA_DISABLED: 'true', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' }
    const args = ['status', '--bucket', store.bucket, '--table', store.table, '--prefix', store.prefix, '--region', 'us-east-1', '--endpoint', ep]
    let out = spawnSync(process.execPath, [path.join(root, 'tools', 'cli.js'), ...args], { encoding: 'utf8', env })
    expect(out.status, out.stderr).toBe(0)
    expect(out.stdout).toMatch(/^instance +host +build +age +feed lag/)
    expect(out.stdout).toMatch(/build b1: 1 instance\(s\)\nbuild b3: 1 instance\(s\)/)
    out = spawnSync(process.execPath, [path.join(root, 'tools', 'cli.js'), ...args, '--json'], { encoding: 'utf8', env })
    expect(JSON.parse(out.stdout).instances.map((i) => i.buildId)).toEqual(['b1', 'b3'])
  })
})

describe.skipIf(!ep)('receipts', () => {
  const store = { bucket: `fc-fleet-${process.pid}`, table: `fc-fleet-${process.pid}`, s3Endpoint: ep, dynamodbEndpoint: ep, region: 'us-east-1', prefix: `rcpt${Date.now()}` }

  it('revalidate({ wait: true }) names the live instances that applied it, with their times, and the one that did not', async () => {
    await fc._coreFor({ ...store, feedIntervalMs: 0 }).ensureResources()
    const A = { ...store, heartbeatMs: 60_000 }
    const B = { ...store, heartbeatMs: 60_001 }
    const C = { ...store, heartbeatMs: 60_002, feedIntervalMs: 60_000 } // read the feed once, at its start
    const cores = [A, B, C].map((o) => fc._coreFor(o))
    for (const c of cores) await c.beat()
    await sleep(500) // every feed's first poll is behind it
    const heard = []
    const r = await fc.revalidate({ tags: [`rcpt-${Date.now()}`], wait: true, timeoutMs: 3_000, onApplied: (i) => heard.push(i.id) }, A)
    expect(r.queued).toBe(false)
    expect(heard.sort(), 'each instance heard of once, as it applied it').toEqual(r.instances.map((i) => i.id).sort())
    expect(r.events.length).toBe(1)
    expect(r.instances.length).toBe(2)
    expect(r.missing.length).toBe(1)
    expect(r.instances.every((i) => i.appliedAfterMs >= 0 && i.appliedAfterMs < 3_000)).toBe(true)
    console.log(`[receipts] applied after ${r.instances.map((i) => i.appliedAfterMs).join(', ')} ms; missing ${r.missing.length}`)

    // The command: one line per instance, exit 1 while one does not apply it in time.
    const env = { PATH: process.env.PATH, AWS_EC2_METADATA_DISABLED: 'true', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' }
    const args = ['revalidate', '--tag', `rcpt-cli-${Date.now()}`, '--wait', '--timeout', '2000', '--bucket', store.bucket, '--table', store.table, '--prefix', store.prefix, '--region', 'us-east-1', '--endpoint', ep]
    const out = spawnSync(process.execPath, [path.join(root, 'tools', 'cli.js'), ...args], { encoding: 'utf8', env })
    expect(out.status, out.stderr).toBe(1)
    expect(out.stdout.match(/^ {2}applied /gm)?.length).toBe(2)
    expect(out.stdout.match(/^ {2}MISSING /gm)?.length).toBe(1)
    expect(out.stdout).toMatch(/1 live instance\(s\) did not apply it in time/)
    // As it fills in: the instances' lines come before the summary.
    expect(out.stdout.indexOf('  applied ')).toBeLessThan(out.stdout.indexOf('feed event(s)'))
  })
})
