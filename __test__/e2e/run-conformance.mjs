#!/usr/bin/env node
// `npm run conformance`: the differential suite (__test__/e2e/conformance.mjs) on its own, for long
// runs: local S3 + DynamoDB, the example app built with fleetcache and with Next's built-in cache,
// Next's built-in on one instance against fleetcache on one and on two.
//
//   npm run conformance -- [--next 16|15|both] [--scenarios N] [--seed S] [--parallel P]
//                          [--replay SEED] [--no-hand-written] [--plant feed-off|max-hard]
//                          [--only TEXT] [--verbose]
//
// --scenarios N --seed S: N generated scenarios (default 100; seed default 1) after the
// hand-written ones. --replay SEED: that one generated scenario (the seed a divergence prints).
// --plant: check the harness itself; `feed-off` starts B with its feed off, `max-hard` sends
// fleetcache's instances a hard revalidateTag where a step says 'max'. --only TEXT: the scenarios
// whose name holds TEXT. --verbose: every scenario's table, not only those that diverged. Exit 1 on
// a divergence.
import path from 'node:path'
import { parseArgs } from 'node:util'
import { startLocalAws } from '../../scripts/local-aws.mjs'
import { startDataServer } from '../../scripts/data-server.mjs'
import { appDir, prepareApp15, installApp, buildApp, startApp, localFleetEnv } from '../../scripts/next-fleet.mjs'
import { generate, runScenarios, scenarios } from './conformance.mjs'

const { values: o } = parseArgs({
  options: {
    next: { type: 'string', default: 'both' },
    scenarios: { type: 'string', default: '100' },
    seed: { type: 'string', default: '1' },
    parallel: { type: 'string', default: '24' },
    replay: { type: 'string' },
    'no-hand-written': { type: 'boolean', default: false },
    plant: { type: 'string' },
    only: { type: 'string' },
    verbose: { type: 'boolean', default: false },
  },
})
if (o.plant && !['feed-off', 'max-hard'].includes(o.plant)) throw new Error(`--plant: feed-off or max-hard, not ${o.plant}`)
const versions = o.next === 'both' ? ['16', '15'] : [o.next]
if (!versions.every((v) => v === '15' || v === '16')) throw new Error(`--next: 16, 15 or both, not ${o.next}`)

process.env.AWS_EC2_METADATA_DISABLED = 'true'
const aws = await startLocalAws()
const data = await startDataServer(4900 + Math.floor(Math.random() * 90))
const run = Date.now().toString(36)
let failed = 0
try {
  for (const v of versions) {
    const next16 = v === '16'
    const dir = next16 ? appDir : prepareApp15()
    await installApp(dir)
    const base = localFleetEnv(aws.endpoint, `conf-${run}-${v}`, { DEMO_DATA_URL: data.url })
    const { default: fc } = await import('../../index.js')
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' })
    await fc._coreFor({ bucket: base.FLEETCACHE_BUCKET, table: base.FLEETCACHE_TABLE, s3Endpoint: aws.endpoint, dynamodbEndpoint: aws.endpoint, region: 'us-east-1', feedIntervalMs: 0 }).ensureResources()
    const t0 = Date.now()
    await buildApp({ ...base, FLEETCACHE_E2E_DIST: '.next-conformance' }, dir)
    await buildApp({ ...base, FLEETCACHE_E2E_DIST: '.next-conformance-builtin', FLEETCACHE_E2E_BUILTIN: '1' }, dir)
    const port = next16 ? 3401 : 3411
    const envs = {
      A: { ...base, FLEETCACHE_E2E_DIST: '.next-conformance', FLEETCACHE_DEMO_INSTANCE: 'A' },
      B: { ...base, FLEETCACHE_E2E_DIST: '.next-conformance', FLEETCACHE_DEMO_INSTANCE: 'B', ...(o.plant === 'feed-off' ? { FLEETCACHE_FEED_INTERVAL_MS: '0' } : {}) },
      R: { ...base, FLEETCACHE_E2E_DIST: '.next-conformance-builtin', FLEETCACHE_E2E_BUILTIN: '1' },
    }
    const ports = { A: port, B: port + 1, R: port + 2 }
    const servers = {}
    for (const n of ['A', 'B', 'R']) servers[n] = await startApp(ports[n], envs[n], dir)
    const restart = async (n) => {
      await servers[n].stop()
      servers[n] = await startApp(ports[n], envs[n], dir)
    }
    try {
      const list = o.replay !== undefined
        ? [generate(Number(o.replay), { next16 })]
        : scenarios({ next16, count: Number(o.scenarios), seed: Number(o.seed), handWritten: !o['no-hand-written'] }).filter((s) => !o.only || s.name.includes(o.only))
      const started = Date.now()
      const found = await runScenarios(list, { servers, restart, run: `${run}${v}`, parallel: Number(o.parallel), plant: o.plant, verbose: o.verbose })
      const steps = list.reduce((s, x) => s + x.steps.length, 0)
      console.log(`[conformance] Next ${v}: ${list.length} scenarios (${steps} steps, seed ${o.seed}), ${found.length} diverged; ${((Date.now() - started) / 1000).toFixed(0)} s (${((Date.now() - t0) / 1000).toFixed(0)} s with the builds)`)
      failed += found.length
    } finally {
      await Promise.all(Object.values(servers).map((s) => s.stop()))
    }
  }
} finally {
  await data.close()
  await aws.stop()
}
process.exit(failed ? 1 : 0)
