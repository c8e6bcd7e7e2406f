#!/usr/bin/env node
// `npm run demo`: the example Next.js app on two instances sharing one local S3 bucket and
// DynamoDB table (moto on 127.0.0.1), and a revalidation made on one instance reaching the other;
// then the Cache Components example ('use cache') the same way.
//   npm run demo            # walk through it, then keep both instances up until Ctrl-C
//   npm run demo -- --once  # walk through it and stop
import { createRequire } from 'node:module'
import { startLocalAws } from './local-aws.mjs'
import { startDataServer } from './data-server.mjs'
import path from 'node:path'
import { installApp, buildApp, startApp, request, appDir, appCcDir, fleetcacheCli, runCli } from './next-fleet.mjs'

const once = process.argv.includes('--once')
const PORTS = [Number(process.env.DEMO_PORT_1) || 3001, Number(process.env.DEMO_PORT_2) || 3002]
/** The Cache Components example's two instances. */
const CC_PORTS = [PORTS[0] + 2, PORTS[1] + 2]
const bold = (s) => `\x1b[1m${s}\x1b[0m`
const say = (s) => console.log(s)

const require = createRequire(import.meta.url)
try {
  require('../index.js')
} catch (err) {
  say('The native addon is not built yet: run `npm install` in the repository first.')
  process.exit(1)
}

const instances = []
let aws
let data
async function shutdown(code) {
  await Promise.all(instances.map((i) => i.stop()))
  if (data) await data.close()
  if (aws) await aws.stop()
  process.exit(code)
}
process.on('SIGINT', () => shutdown(130))
process.on('SIGTERM', () => shutdown(143))

async function page(port, p) {
  return request(`http://127.0.0.1:${port}`, p)
}

try {
  say(bold('Installing the example app (examples/next-app, Next 16) if needed…'))
  await installApp()
  say(bold('Starting local S3 + DynamoDB (moto; installed into .local/venv on first run)…'))
  aws = await startLocalAws()
  data = await startDataServer(Number(process.env.DEMO_DATA_PORT) || 4599)
  const env = {
    ...process.env,
    ...aws.env,
    FLEETCACHE_BUCKET: 'fleetcache-demo',
    FLEETCACHE_TABLE: 'fleetcache-demo',
    DEMO_DATA_URL: data.url,
    NEXT_TELEMETRY_DISABLED: '1',
  }
  Object.assign(process.env, env)
  const fc = require('../index.js')
  await fc._coreFor({ feedIntervalMs: 0 }).ensureResources()
  say(`   S3 + DynamoDB at ${aws.endpoint}; bucket and table "fleetcache-demo"; data API at ${data.url}`)

  say(bold('\nBuilding the example app (next build)…'))
  await buildApp(env)

  say(bold('\nSeeding the build\'s prerendered pages into S3 (npx fleetcache seed .next)…'))
  const seeded = await fleetcacheCli(['seed', path.join(appDir, '.next')], env)
  if (seeded.code !== 0) throw new Error(`fleetcache seed failed: ${seeded.stderr}`)
  say(`   build ${seeded.report.buildId}: ${seeded.report.written} entries written, ${seeded.report.existing} already there`)

  say(bold(`\nStarting two instances: http://127.0.0.1:${PORTS[0]} and http://127.0.0.1:${PORTS[1]}`))
  for (const [i, port] of PORTS.entries()) {
    instances.push(await startApp(port, { ...env, FLEETCACHE_DEMO_INSTANCE: String(i + 1) }))
  }

  const [p1, p2] = PORTS
  say(bold('\n1. Right after the deploy, the prerendered /isr is a HIT on the very first request to each instance (seeded from the build)'))
  let a = await page(p1, '/isr')
  let b2 = await page(p2, '/isr')
  say(`   instance 1: ${a.cache.padEnd(5)} stamp ${a.stamp}`)
  say(`   instance 2: ${b2.cache.padEnd(5)} stamp ${b2.stamp}   ${a.stamp === b2.stamp ? '← the page `next build` rendered' : '← differs!'}`)

  say(bold('\n2. /items/5 is not prerendered: instance 1 renders it once and stores it in S3; instance 2 serves the same page'))
  const i1 = await page(p1, '/items/5')
  let i2 = await page(p2, '/items/5')
  say(`   instance 1: ${i1.cache.padEnd(5)} stamp ${i1.stamp}`)
  say(`   instance 2: ${i2.cache.padEnd(5)} stamp ${i2.stamp}   ${i1.stamp === i2.stamp ? '← same page, from the shared store' : '← differs!'}`)
  i2 = await page(p2, '/items/5')
  say(`   instance 2 again: ${i2.cache} (from its memory, no network)`)

  say(bold(`\n3. revalidatePath('/isr') on instance 1 only (POST /api/revalidate?path=/isr)`))
  await fetch(`http://127.0.0.1:${p1}/api/revalidate?path=/isr`, { method: 'POST' })
  await new Promise((r) => setTimeout(r, 400))
  b2 = await page(p2, '/isr')
  say(`   instance 2: ${b2.cache.padEnd(5)} stamp ${b2.stamp}   ${b2.stamp !== a.stamp ? '← re-rendered: instance 2 heard of the revalidation through the feed' : '← still old!'}`)
  await new Promise((r) => setTimeout(r, 400))
  a = await page(p1, '/isr')
  say(`   instance 1: ${a.cache.padEnd(5)} stamp ${a.stamp}   ${a.stamp === b2.stamp ? '← the page instance 2 rendered, announced through the feed and loaded from S3' : ''}`)

  say(bold('\n   What the store holds for /isr now (npx fleetcache inspect /isr):'))
  const inspected = await runCli(['inspect', '/isr'], env)
  if (inspected.code !== 0) throw new Error(`fleetcache inspect /isr exited ${inspected.code}: ${inspected.out}${inspected.err}`)
  say(inspected.out.trimEnd().split('\n').map((l) => `   ${l}`).join('\n'))
  const gets = (await (await fetch(`http://127.0.0.1:${p2}/metrics`)).text()).split('\n').filter((l) => l.startsWith('fleetcache_gets_total'))
  say(`   instance 2's /metrics: ${gets.join(', ')}`)

  say(bold(`\n4. revalidateTag('posts', 'max') on instance 2: instance 1 serves /fetch-tags STALE once, then the new data`))
  const f0 = await page(p1, '/fetch-tags')
  await page(p2, '/fetch-tags')
  await fetch(`http://127.0.0.1:${p2}/api/revalidate?tag=posts&profile=max`, { method: 'POST' })
  await new Promise((r) => setTimeout(r, 400))
  const f1 = await page(p1, '/fetch-tags')
  await new Promise((r) => setTimeout(r, 1500))
  const f2 = await page(p1, '/fetch-tags')
  say(`   before:  ${f0.cache.padEnd(5)} ${f0.stamp}`)
  say(`   next:    ${f1.cache.padEnd(5)} ${f1.stamp}   (served stale while regenerating)`)
  say(`   then:    ${f2.cache.padEnd(5)} ${f2.stamp}`)

  say(bold(`\n5. Cache Components (examples/cache-components, Next 16): a 'use cache' result on a fleet`))
  say('   building it and starting two more instances (cacheHandlers → fleetcache/use-cache)…')
  await installApp(appCcDir)
  await buildApp(env, appCcDir)
  for (const [i, port] of CC_PORTS.entries()) {
    instances.push(await startApp(port, { ...env, FLEETCACHE_DEMO_INSTANCE: `cc${i + 1}` }, appCcDir))
  }
  const [c1, c2] = CC_PORTS
  const u1 = await page(c1, '/uc/1')
  let u2 = await page(c2, '/uc/1')
  say(`   instance cc1: ${u1.stamp}`)
  say(`   instance cc2: ${u2.stamp}   ${u1.stamp === u2.stamp ? '← computed once, on cc1, served from the shared store' : '← differs!'}`)
  await fetch(`http://127.0.0.1:${c1}/api/revalidate?tag=uc-items`, { method: 'POST' })
  await new Promise((r) => setTimeout(r, 400))
  u2 = await page(c2, '/uc/1')
  say(`   revalidateTag('uc-items') on cc1, then cc2: ${u2.stamp}   ${u2.stamp !== u1.stamp ? '← recomputed: the revalidation reached cc2 through the feed' : '← still old!'}`)

  const s = `http://127.0.0.1`
  say(bold('\nTry it yourself:'))
  say(`   curl -s -o /dev/null -D - ${s}:${p2}/isr | grep -i x-nextjs-cache`)
  say(`   curl -s -X POST '${s}:${p1}/api/revalidate?path=/isr'`)
  say(`   curl -s ${s}:${p2}/isr | grep -o 'id="stamp">[^<]*'          # new stamp on the other instance`)
  say(`   curl -s -X POST '${s}:${p1}/api/revalidate?tag=posts&profile=max'`)
  say(`   curl -s -X POST '${s}:${p1}/api/revalidate-pages?path=/ssg'  # pages router res.revalidate`)
  say(`   curl -s ${s}:${c2}/uc/1 | grep -o 'id="stamp">[^<]*'           # a 'use cache' result`)
  say(`   curl -s -X POST '${s}:${c1}/api/revalidate?tag=uc-items'`)
  say(`   curl -s ${s}:${p1}/metrics | grep fleetcache_gets_total       # Prometheus metrics`)
  say(`   npx fleetcache inspect /isr                                   # with the demo's FLEETCACHE_* / AWS_* variables`)
  if (once) await shutdown(0)
  say(bold('\nBoth instances keep running. Ctrl-C stops everything this demo started.'))
} catch (err) {
  console.error(`\n[demo] ${err.message}`)
  await shutdown(1)
}
