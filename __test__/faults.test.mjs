// Revalidations reach every instance when DynamoDB or S3 misbehave (issue "faults"): separate Node
// processes, each with its own native core, talk to the local servers through a loopback fault
// proxy (scripts/fault-proxy.mjs) that black-holes, refuses, or fails one named operation. During
// each fault one instance makes 100 revalidations; every caller must return within
// revalidateTimeoutMs, the maker must honour all 100 at once, and after healing every instance,
// and a process started afterwards, must honour all 100.
import http from 'node:http'
import { describe, it, expect, beforeAll, afterAll, beforeEach, afterEach } from 'vitest'
import { startInstance } from '../scripts/fleet.mjs'
import { startFaultProxy } from '../scripts/fault-proxy.mjs'
import { fc, sleep, waitFor } from './helpers.mjs'

const ep = process.env.FLEETCACHE_TEST_ENDPOINT
const N = 100
const REVALIDATE_TIMEOUT_MS = 2_000
const SLACK_MS = 250 // the worker's IPC and timers on a shared machine; the figures are reported in the note

describe.skipIf(!ep)('faults: revalidations made during an outage reach every instance', () => {
  const run = Date.now().toString(36)
  const env = { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' }
  let dynamo, s3, A, B
  const extra = []
  let options
  let tables = 0

  /**
   * Two instances on a table of their own: moto copies a whole table for every transaction, so a
   * table that grows through the suite would make the local server, not fleetcache, the bottleneck.
   */
  beforeEach(async () => {
    const table = `faults-${run}-${tables++}`
    options = { bucket: `faults-${run}`, table, s3Endpoint: s3.url, dynamodbEndpoint: dynamo.url, region: 'us-east-1', revalidateTimeoutMs: REVALIDATE_TIMEOUT_MS }
    await fc._coreFor({ ...options, feedIntervalMs: 0 }).ensureResources()
    ;[A, B] = await Promise.all([startInstance(options, env), startInstance(options, env)])
  }, 60_000)
  afterEach(async () => {
    // Healed whatever happened: a test that fails during its fault must not leave the fault to the next.
    await Promise.all([dynamo, s3].filter(Boolean).map((p) => p.heal()))
    await Promise.all([A, B, ...extra.splice(0)].filter(Boolean).map((i) => i.stop()))
  })

  beforeAll(async () => {
    Object.assign(process.env, env)
    dynamo = await startFaultProxy(ep)
    s3 = await startFaultProxy(ep)
  })
  afterAll(async () => {
    await Promise.all([dynamo, s3].filter(Boolean).map((p) => p.close()))
  })

  const faults = [
    { name: 'dynamodb-blackhole', proxy: () => dynamo, fault: { mode: 'blackhole' }, ms: 40_000 },
    { name: 'dynamodb-refused', proxy: () => dynamo, fault: { mode: 'refuse' }, ms: 15_000 },
    {
      name: 'feed-append-failing',
      proxy: () => dynamo,
      // Throttled, and slow: DynamoDB pauses for 600 ms of every 800, so the burst of 100 queues
      // and the feed's reads pass their deadlines. Throttling is an answer, and a call dropped by
      // its deadline while DynamoDB answers others is not an outage: the breaker (which would stop
      // the feed too) stays closed. (CI saw a slow local server open it.)
      fault: {
        fail: { op: 'TransactWriteItems', status: 400, code: 'ProvisionedThroughputExceededException' },
        stall: { ms: 600, everyMs: 800 },
      },
      ms: 15_000,
      breakerStaysClosed: true,
    },
    { name: 's3-blackhole', proxy: () => s3, fault: { mode: 'blackhole' }, ms: 15_000 },
    // A policy mistake, fixed by a person (issue 26): DynamoDB refuses outright. Nothing is given
    // up: the revalidations and a set's feed event wait (backing off up to a minute) and land once
    // the proxy stops refusing.
    {
      name: 'transact-access-denied',
      proxy: () => dynamo,
      fault: { fail: { op: 'TransactWriteItems', status: 400, code: 'AccessDeniedException' } },
      ms: 15_000,
      setDuring: true,
    },
    {
      // The same, and the instance that made them is restarted (SIGTERM) during the fault: what it
      // could not deliver goes to its spool (spoolDir), and the instance started after it on this
      // machine delivers it.
      name: 'transact-access-denied-restarted',
      proxy: () => dynamo,
      fault: { fail: { op: 'TransactWriteItems', status: 400, code: 'AccessDeniedException' } },
      ms: 15_000,
      setDuring: true,
      restartDuring: true,
    },
    {
      name: 'feed-number-access-denied',
      proxy: () => dynamo,
      fault: { fail: { op: 'UpdateItem', status: 400, code: 'AccessDeniedException' } },
      ms: 15_000,
      setDuring: true,
    },
  ]

  it('overlapping renders on two instances, 20 times: every instance and a fresh process serve what S3 holds', async () => {
    const keys = []
    for (let i = 0; i < 20; i++) {
      const key = `/race/${run}/${i}`
      keys.push(key)
      // A's render starts first, B's later; B's set lands first, A's (the older render) last.
      await A.call('get', { key })
      await sleep(5)
      await B.call('get', { key })
      await B.call('set', { key, html: 'B' })
      await A.call('set', { key, html: 'A' })
    }
    for (const i of [A, B]) {
      for (const key of keys) {
        const seen = await i.call('waitFor', { key, until: { html: 'A' }, timeoutMs: 5_000 })
        expect(seen.timedOut, key).toBeUndefined()
      }
    }
    const fresh = await startInstance(options, env)
    extra.push(fresh)
    for (const key of keys) expect((await fresh.call('get', { key })).html).toBe('A')
  }, 120_000)

  it('SIGTERM delivers what the outbox holds before the process goes', async () => {
    const key = `/sigterm/${run}`
    const tag = `sigterm-${run}`
    const D = await startInstance(options, env)
    await D.call('setMany', { keys: [key], tags: [tag] })
    await dynamo.set({ mode: 'refuse' })
    await D.call('revalidateEach', { tags: [tag] }) // queued: DynamoDB refuses connections
    expect((await D.call('stats')).outboxDepth).toBe(1)
    const stopped = D.stop() // SIGTERM while DynamoDB is still down; it comes back 1 s later
    await sleep(1_000)
    await dynamo.heal()
    const t0 = Date.now()
    await stopped
    expect(Date.now() - t0).toBeLessThan(5_000) // the flush's deadline
    const fresh = await startInstance(options, env)
    extra.push(fresh)
    expect(await fresh.call('countHits', { keys: [key] })).toBe(0)
  }, 60_000)

  it('S3 black-holed for 10 s: sets made meanwhile stay in the maker\'s memory and reach S3 and every instance after healing', async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `/s3-sets/${run}/${i}`)
    const tags = keys.map((_, i) => `s3-sets-${run}-${i}`)
    await A.call('setMany', { keys, tags, html: 'before' })
    expect(await B.call('countHits', { keys })).toBe(keys.length) // B holds the old values
    await s3.set({ mode: 'blackhole' })
    const t0 = Date.now()
    await A.call('setMany', { keys, tags, html: 'during' })
    const setMs = Date.now() - t0
    const during = await A.call('stats')
    for (const key of keys) expect((await A.call('get', { key })).html).toBe('during')
    await sleep(Math.max(0, 10_000 - (Date.now() - t0)))
    await s3.heal()
    const healed = Date.now()
    for (const key of keys) {
      const seen = await B.call('waitFor', { key, until: { html: 'during' }, timeoutMs: 30_000, everyMs: 50 })
      expect(seen.timedOut, key).toBeUndefined()
    }
    const after = await A.call('stats')
    console.log(`[faults] s3-blackhole sets: ${keys.length} sets answered in ${setMs} ms (setTimeoutMs 2000), uploadsQueued ${during.uploadsQueued}, all on B ${((Date.now() - healed) / 1000).toFixed(1)} s after healing; uploadsLanded ${after.uploadsLanded}, uploadsSuperseded ${after.uploadsSuperseded}`)
    expect(during.uploadsQueued).toBe(keys.length)
    expect(after.uploadsLanded).toBe(keys.length)
    const fresh = await startInstance(options, env)
    extra.push(fresh)
    for (const key of keys) expect((await fresh.call('get', { key })).html).toBe('during')
  }, 90_000)

  it('a 300 MB foreign object at a key costs a process no more memory than maxEntryBytes', async () => {
    const key = `/foreign/${run}`
    const objectKey = fc._coreFor({ ...options, feedIntervalMs: 0 }).objectKey(key, 'APP_PAGE')
    // Streamed straight to the local S3 (unsigned: the local server does not check), 1 MiB at a time.
    const MiB = 1024 * 1024
    const size = 300 * MiB
    await new Promise((resolve, reject) => {
      const req = http.request(`${ep}/${options.bucket}/${objectKey}`, { method: 'PUT', headers: { 'content-length': size } }, (res) => {
        res.resume()
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`PUT ${res.statusCode}`))))
      })
      req.on('error', reject)
      const chunk = Buffer.alloc(MiB, 0x61)
      let sent = 0
      const pump = () => {
        while (sent < size) {
          sent += MiB
          if (!req.write(chunk)) return req.once('drain', pump)
        }
        req.end()
      }
      pump()
    })
    const D = await startInstance(options, env)
    extra.push(D)
    const before = await D.call('memory')
    const hits = await D.call('getConcurrent', { key, n: 5 })
    const after = await D.call('memory')
    const st = await D.call('stats')
    const grew = after.maxRss - before.maxRss
    console.log(`[faults] a ${size / MiB} MiB foreign object, 5 concurrent gets: peak RSS grew by ${(grew / MiB).toFixed(1)} MiB (maxEntryBytes ${32} MiB); ${hits} hits, getErrors ${st.getErrors}, corrupt ${st.corrupt}`)
    await fetch(`${ep}/${options.bucket}/${objectKey}`, { method: 'DELETE' }) // the local server holds it in memory
    expect(hits).toBe(0)
    expect(grew).toBeLessThanOrEqual(32 * MiB) // the default maxEntryBytes
  }, 120_000)

  it('a 10 MB key and a 2,048-character tag: the set and the revalidation reach the other instance', async () => {
    const key = `/${'k'.repeat(10 * 1024 * 1024)}`
    const tag = `${run}-${'t'.repeat(2_048)}`.slice(0, 2_048)
    await A.call('set', { key, html: 'v1', tags: [tag], revalidate: 3600 })
    expect((await B.call('get', { key })).html).toBe('v1') // in B's memory now
    await A.call('set', { key, html: 'v2', tags: [tag], revalidate: 3600 })
    const b = await B.call('waitFor', { key, until: { html: 'v2' }, timeoutMs: 10_000, everyMs: 50 })
    expect(b.html).toBe('v2') // the event carried the key's hash
    await A.call('revalidateTag', { tags: [tag] })
    const gone = await B.call('waitFor', { key, until: 'null', timeoutMs: 10_000, everyMs: 50 })
    expect(gone.hit).toBe(false)
    const st = await A.call('stats')
    expect([st.outboxGiveUps, st.revalidateErrors]).toEqual([0, 0])
  }, 60_000)

  it('S3 and DynamoDB hung together, a get every 0.4 s: after the first get that times out, at most 2 more wait over 100 ms', async () => {
    await A.call('timedGets', { prefix: '/warm', n: 5, everyMs: 50 }) // answers to measure the deadline by
    await Promise.all([dynamo.set({ mode: 'blackhole' }), s3.set({ mode: 'blackhole' })])
    const took = await A.call('timedGets', { prefix: '/hung', n: 25, everyMs: 400 })
    await Promise.all([dynamo.heal(), s3.heal()])
    const first = took.findIndex((ms) => ms >= 900)
    const slowAfter = took.slice(first + 1).filter((ms) => ms > 100)
    console.log(`[faults] both backends hung, a get every 0.4 s: latencies ${took.map((ms) => ms.toFixed(0)).join(', ')} ms; the first timeout is get ${first + 1}, ${slowAfter.length} over 100 ms after it (${slowAfter.map((ms) => ms.toFixed(0)).join(', ')})`)
    expect(first).toBeGreaterThanOrEqual(0)
    expect(slowAfter.length).toBeLessThanOrEqual(2)
  }, 60_000)

  it('10,000 tags in one revalidateTag: the caller waits at most revalidateTimeoutMs, every instance honours them all, no memory dropped', async () => {
    const tags = Array.from({ length: 10_000 }, (_, i) => `wide-${run}-${i}`)
    // 100 pages on B, each tagged with one of the tags, spread over the 200 units.
    const keys = Array.from({ length: N }, (_, i) => `/wide/${i}`)
    const keyTags = keys.map((_, i) => tags[i * 100 + 99])
    await A.call('setMany', { keys, tags: keyTags })
    expect(await B.call('countHits', { keys })).toBe(N)
    const waited = await A.call('revalidateAll', { tags })
    expect(await A.call('countHits', { keys })).toBe(0) // honoured here at once
    const t0 = Date.now()
    await waitFor('wide: A\'s outbox drained', async () => (await A.call('stats')).outboxDepth === 0, { ms: 120_000, everyMs: 250, detail: () => A.call('stats') })
    await waitFor('wide: no hits left on B', async () => (await B.call('hits', { keys })).length === 0, { ms: 60_000, everyMs: 250, detail: () => B.call('stats') })
    const [a, b] = [await A.call('stats'), await B.call('stats')]
    console.log(`[faults] 10,000 tags in one call: the caller waited ${waited.toFixed(0)} ms (revalidateTimeoutMs ${REVALIDATE_TIMEOUT_MS}); all on B ${((Date.now() - t0) / 1000).toFixed(1)} s after it returned; feedResets A ${a.feedResets}, B ${b.feedResets}; revalidationsQueued ${a.revalidationsQueued}`)
    expect(waited).toBeLessThanOrEqual(REVALIDATE_TIMEOUT_MS + SLACK_MS)
    expect([a.feedResets, b.feedResets]).toEqual([0, 0])
    const C = await startInstance(options, env)
    extra.push(C)
    expect(await C.call('countHits', { keys })).toBe(0)
  }, 240_000)

  for (const f of faults) {
    it(`${f.name} (${f.ms / 1000} s): ${N}/${N} honoured by the maker at once and by everyone after healing`, async () => {
      const keys = Array.from({ length: N }, (_, i) => `/${f.name}/${i}`)
      const tags = keys.map((_, i) => `${f.name}-${run}-${i}`)
      await A.call('setMany', { keys, tags })
      expect(await B.call('countHits', { keys })).toBe(N) // in B's memory now
      const setKey = `/${f.name}/set`
      if (f.setDuring) {
        await A.call('set', { key: setKey, html: 'v1', revalidate: 3600 })
        expect((await B.call('get', { key: setKey })).html).toBe('v1')
      }

      const started = Date.now()
      await f.proxy().set(f.fault)
      const waited = await A.call('revalidateEach', { tags })
      const maxWait = Math.max(...waited)
      const Adur = await A.call('stats')
      console.log(`[faults] ${f.name}: the maker during the fault: outboxDepth ${Adur.outboxDepth}, dynamodbBreakerOpen ${Adur.dynamodbBreakerOpen}, s3BreakerOpen ${Adur.s3BreakerOpen}, feedResets ${Adur.feedResets}`)
      console.log(`[faults] ${f.name}: ${N} revalidateTag calls, longest wait ${maxWait.toFixed(0)} ms (revalidateTimeoutMs ${REVALIDATE_TIMEOUT_MS})`)
      expect(maxWait).toBeLessThanOrEqual(REVALIDATE_TIMEOUT_MS + SLACK_MS)
      if (f.breakerStaysClosed) expect(Adur.dynamodbBreakerOpen).toBe(false)
      expect(await A.call('countHits', { keys })).toBe(0)
      if (f.setDuring) {
        await A.call('set', { key: setKey, html: 'v2', revalidate: 3600 }) // resolves: its event waits
        expect((await A.call('get', { key: setKey })).html).toBe('v2')
      }
      if (f.restartDuring) {
        const t = Date.now()
        await A.stop()
        A = await startInstance(options, env)
        const st = await A.call('stats')
        console.log(`[faults] ${f.name}: A stopped (SIGTERM) and started again in ${((Date.now() - t) / 1000).toFixed(1)} s; the new A's outboxDepth ${st.outboxDepth} (replayed from the spool)`)
        expect(st.outboxDepth).toBe(N) // the set's feed event landed: only TransactWriteItems is refused
      }

      await sleep(Math.max(0, f.ms - (Date.now() - started)))
      expect(await A.call('countHits', { keys })).toBe(0) // still honoured at the end of the fault
      await f.proxy().heal()
      const healed = Date.now()

      await waitFor(`${f.name}: A's outbox drained`, async () => (await A.call('stats')).outboxDepth === 0, {
        ms: 90_000,
        everyMs: 250,
        detail: () => A.call('stats'),
      })
      const drained = Date.now()
      await waitFor(`${f.name}: no hits left on B`, async () => (await B.call('hits', { keys })).length === 0, {
        ms: 60_000,
        everyMs: 250,
        detail: async () => ({ left: await B.call('hits', { keys }), A: await A.call('stats'), B: await B.call('stats') }),
      })
      console.log(`[faults] ${f.name}: the maker's outbox drained ${((drained - healed) / 1000).toFixed(1)} s and every instance honoured all ${N} ${((Date.now() - healed) / 1000).toFixed(1)} s after healing; B ${JSON.stringify(await B.call('stats'))}`)
      expect(await A.call('countHits', { keys })).toBe(0)
      const C = await startInstance(options, env)
      extra.push(C)
      expect(await C.call('countHits', { keys })).toBe(0)
      if (f.setDuring) {
        const b = await B.call('waitFor', { key: setKey, until: { html: 'v2' }, timeoutMs: 10_000, everyMs: 50 })
        console.log(`[faults] ${f.name}: the set made during the fault: B serves ${b.html} ${((b.at - healed) / 1000).toFixed(1)} s after healing; outboxGiveUps ${(await A.call('stats')).outboxGiveUps}`)
        expect(b.html).toBe('v2')
        expect((await C.call('get', { key: setKey })).html).toBe('v2')
        expect((await A.call('stats')).outboxGiveUps).toBe(0)
      }
    }, f.ms + 150_000)
  }
})
