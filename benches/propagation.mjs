// Propagation across a fleet: three Node processes (one native core each) on one bucket and
// table. Measures how long a revalidation takes to reach the other two, and how many DynamoDB
// requests an idle process sends, idle and while serving 1,000 gets per second.
import { startInstance } from '../scripts/fleet.mjs'

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

export async function propagation({ endpoint, env, fc, quick }) {
  const run = Date.now().toString(36)
  const options = { bucket: `prop-${run}`, table: `prop-${run}`, s3Endpoint: endpoint, dynamodbEndpoint: endpoint, region: 'us-east-1' }
  await fc._coreFor(options).ensureResources()
  const [A, B, C] = await Promise.all([0, 1, 2].map(() => startInstance(options, env)))
  try {
    const n = quick ? 40 : 200
    const lat = []
    for (let i = 0; i < n; i++) {
      const key = `/prop/${i}`
      await A.call('set', { key, html: `v${i}`, tags: [`pt${i}`] })
      await Promise.all([B, C].map((x) => x.call('get', { key })))
      await new Promise((r) => setTimeout(r, 2))
      const { at } = await A.call('revalidateTag', { tags: [`pt${i}`] })
      const seen = await Promise.all([B, C].map((x) => x.call('waitFor', { key, until: 'null', everyMs: 1, timeoutMs: 10_000 })))
      for (const s of seen) lat.push(s.timedOut ? Infinity : Math.max(0, s.at - at))
      // spread the revalidations over the poll phase
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 250)))
    }
    lat.sort((a, b) => a - b)
    const seconds = quick ? 5 : 20
    const rate = async (inst, during) => {
      const s0 = await inst.call('stats')
      const t0 = Date.now()
      const extra = await during()
      const s1 = await inst.call('stats')
      const secs = (Date.now() - t0) / 1000
      return { reads: (s1.dynamodbReads - s0.dynamodbReads) / secs, writes: (s1.dynamodbWrites - s0.dynamodbWrites) / secs, extra }
    }
    await B.call('get', { key: '/prop/0' })
    await B.call('set', { key: '/hot', html: 'hot', tags: ['hot'] })
    await B.call('get', { key: '/hot' })
    const idle = await rate(B, () => new Promise((r) => setTimeout(r, seconds * 1000)))
    const loaded = await rate(B, () => B.call('load', { key: '/hot', rate: 1000, seconds }))
    return {
      n,
      p50: pct(lat, 0.5),
      p99: pct(lat, 0.99),
      max: lat[lat.length - 1],
      idle,
      loaded,
      getsPerSecond: loaded.extra.gets / seconds,
    }
  } finally {
    await Promise.all([A, B, C].map((x) => x.stop()))
  }
}
