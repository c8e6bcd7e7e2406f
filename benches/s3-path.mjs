// A `get` that must load from S3 against a raw `@aws-sdk/client-s3` GetObject of the same object
// on the same local server (issue 14, item 4), for pages of 5 KB, 135 KB and 1 MB. fleetcache's
// side is GetObject + decode + the value Next receives; the raw side is GetObject + the body's
// bytes. Entries carry no tags (a tag's first read is a DynamoDB request, measured elsewhere).
// Rounds alternate the two sides; each round reports medians, and the ratio of the medians.
import { S3Client, GetObjectCommand } from '@aws-sdk/client-s3'

function page(bytes) {
  // Text that compresses like a real page (repeated markup with varying content), not a run of
  // one character.
  let html = '<!DOCTYPE html><html><head><title>bench</title></head><body>'
  let i = 0
  while (html.length < bytes * 0.75) html += `<div class="item" data-i="${i}"><a href="/p/${i}">Product ${i * 7919 % 10007}</a><span>${(i * 31) % 997}.99</span></div>`, i++
  return { kind: 'APP_PAGE', html, rscData: Buffer.from(html.slice(0, Math.floor(bytes * 0.25))), headers: {}, status: 200, postponed: undefined, segmentData: undefined }
}

async function median(fn, iters) {
  const xs = []
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint()
    await fn()
    xs.push(Number(process.hrtime.bigint() - t0))
  }
  xs.sort((a, b) => a - b)
  return xs[Math.floor(iters / 2)]
}

/** `{ sizes: [{ label, stored, rounds: [{ fleetcache, raw }] }] }` in ns. */
export async function s3PathBench({ fc, options, endpoint, iters = 200, rounds = 3 }) {
  const Handler = fc.createCacheHandler(options)
  const h = new Handler({})
  const core = fc._coreFor(options)
  const s3 = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } })
  const ctx = { kind: 'APP_PAGE', isRoutePPREnabled: false, isFallback: false }
  const out = []
  for (const [label, bytes] of [['5 KB', 5_000], ['135 KB', 135_000], ['1 MB', 1_000_000]]) {
    const key = `/s3-path-${bytes}`
    await h.set(key, page(bytes), { ...ctx, cacheControl: { revalidate: 3600, expire: undefined } })
    const [entry] = await core.inspect(key)
    const cmd = () => new GetObjectCommand({ Bucket: options.bucket, Key: entry.objectKey })
    const viaFleetcache = async () => {
      core.clearMemory()
      const got = await h.get(key, ctx)
      if (!got || got.value.html.length === 0) throw new Error('miss')
    }
    const raw = async () => {
      const res = await s3.send(cmd())
      const body = await res.Body.transformToByteArray()
      if (body.length !== entry.storedBytes) throw new Error('short read')
    }
    // Warm both paths (connections, JIT).
    for (let i = 0; i < 20; i++) {
      await viaFleetcache()
      await raw()
    }
    const rs = []
    for (let r = 0; r < rounds; r++) {
      const f = await median(viaFleetcache, iters)
      const w = await median(raw, iters)
      rs.push({ fleetcache: f, raw: w })
    }
    out.push({ label, stored: entry.storedBytes, rounds: rs })
  }
  s3.destroy()
  return out
}
