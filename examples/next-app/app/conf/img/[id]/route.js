import fs from 'node:fs'
import path from 'node:path'
// The source of the differential suite's images: public/dot.png at a path of the scenario's own, so
// `/_next/image?url=/conf/img/<id>` is an image cache entry per scenario (Next 16 stores optimized
// images through the cache handler: `images.customCacheHandler`).
export const dynamic = 'force-dynamic'
export async function GET() {
  const png = fs.readFileSync(path.join(process.cwd(), 'public', 'dot.png'))
  return new Response(png, { headers: { 'content-type': 'image/png', 'cache-control': 'public, max-age=60' } })
}
