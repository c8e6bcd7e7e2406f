// Propagation across a fleet: three Node processes (one native core each) on one bucket and
// table. Measures how long a revalidation takes to reach the other two, what its receipt says
// of it, and how many DynamoDB requests a process sends, idle (with heartbeats and without, side
// by side) and while serving 1,000 gets per second.
import { startInstance } from '../scripts/fleet.mjs'

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

export async function propagation({ endpoint, env, fc, quick }) {
  const run = Date.now().toString(36)
  const options = { bucket: `prop-${run}`, table: `prop-${run}`, s3Endpoint: endpoint, dynamodbEndpoint: endpoint, region: 'us-east-1' }
  await fc._coreFor(options).ensureResources()
  const [A, B, C] = await Promise.all([0, 1, 2].map(() => startInstance(options, env)))
  // D: the same as B with heartbeats off, for the heartbeats' cost side by side.
  const D = await startInstance({ ...options, heartbeatMs: 0 }, env)
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
    // Receipts: A revalidates and waits until B and C have applied it (A's own is at 0 ms).
    await new Promise((r) => setTimeout(r, 1_500)) // every instance's first heartbeat is written
    const applied = []
    const waited = []
    let incomplete = 0
    for (let i = 0; i < n / 2; i++) {
      const { took, receipt } = await A.call('receipt', { tags: [`rc${i}`], timeoutMs: 10_000 })
      if (receipt.missing.length || receipt.instances.length < 3) incomplete++
      applied.push(Math.max(...receipt.instances.map((x) => x.appliedAfterMs)))
      waited.push(took)
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 250)))
    }
    applied.sort((a, b) => a - b)
    waited.sort((a, b) => a - b)
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
    await D.call('get', { key: '/prop/0' })
    // Side by side over the same seconds: B (heartbeats on, the default interval) and D (off).
    const [idle, idleNoBeat] = await Promise.all([B, D].map((x) => rate(x, () => new Promise((r) => setTimeout(r, seconds * 1000)))))
    const loaded = await rate(B, () => B.call('load', { key: '/hot', rate: 1000, seconds }))
    return {
      n,
      p50: pct(lat, 0.5),
      p99: pct(lat, 0.99),
      max: lat[lat.length - 1],
      receipts: { n: n / 2, incomplete, appliedP50: pct(applied, 0.5), appliedP99: pct(applied, 0.99), waitedP50: pct(waited, 0.5), waitedP99: pct(waited, 0.99) },
      idle,
      idleNoBeat,
      loaded,
      getsPerSecond: loaded.extra.gets / seconds,
    }
  } finally {
    await Promise.all([A, B, C, D].map((x) => x.stop()))
  }
}
