// fleetcache's counters (BENCH_HANDLER=fleetcache or fleetcache-hook): memory hits, S3 loads, whether the feed is read.
export const dynamic = 'force-dynamic'

export async function GET() {
  if (!String(process.env.BENCH_HANDLER).startsWith('fleetcache')) return Response.json({})
  const { stats } = await import('fleetcache')
  const s = stats()
  return Response.json({ memoryHits: s.memoryHits, backendHits: s.backendHits, misses: s.misses, feedTrusted: s.feedTrusted, feedPolls: s.feedPolls, feedErrors: s.feedErrors })
}
