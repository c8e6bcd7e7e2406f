// Shared helpers for the vitest suites: backends to run against, unique names per run.
import { createRequire } from 'node:module'
const require = createRequire(import.meta.url)
export const fc = require('../index.js')

const run = `${process.pid.toString(36)}${Date.now().toString(36)}`
let n = 0

/** The backends a suite runs against: always memory; S3 + DynamoDB when npm test started moto. */
export function backends() {
  const list = [{ name: 'memory', options: () => ({ backend: 'memory', prefix: `t${run}-${n++}` }) }]
  const ep = process.env.FLEETCACHE_TEST_ENDPOINT
  if (ep) {
    const bucket = `fc-${run}`.toLowerCase()
    const table = `fc-${run}`
    list.push({
      name: 's3+dynamodb',
      options: () => ({ bucket, table, s3Endpoint: ep, dynamodbEndpoint: ep, region: 'us-east-1', prefix: `t${n++}` }),
    })
  }
  return list
}

export async function handlerFor(options) {
  const Handler = fc.createCacheHandler(options)
  const core = fc._coreFor(options)
  await core.ensureResources()
  // The poll that first makes the feed trusted drops the memory tier (it cannot vouch for what
  // came before it; a poll before ensureResources met no table). On a busy machine it can fall
  // between a test's set and get and turn an expected memory hit into an S3 hit (a CI run failed
  // on it): hand out the handler after it.
  for (const until = Date.now() + 10_000; !core.stats().feedTrusted && Date.now() < until; ) await sleep(50)
  return new Handler({ serverDistDir: undefined, fetchCacheKeyPrefix: '' })
}

/** Drops the in-memory tier so the next get reads the shared store. */
export function dropMemory(options) {
  fc._coreFor(options).clearMemory()
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/**
 * Polls `check` every `everyMs` until it returns something other than `undefined` or `false`,
 * and resolves with that; after `ms`, rejects naming `what` (with `detail()`'s value, when given).
 */
export async function waitFor(what, check, { ms = 5_000, everyMs = 50, detail } = {}) {
  const end = Date.now() + ms
  for (;;) {
    const v = await check()
    if (v !== undefined && v !== false) return v
    if (Date.now() >= end) {
      const more = detail === undefined ? '' : `: ${JSON.stringify(await detail())}`
      throw new Error(`${what}: not within ${ms} ms${more}`)
    }
    await sleep(everyMs)
  }
}
