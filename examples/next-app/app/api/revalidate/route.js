// POST /api/revalidate?path=/isr | ?tag=posts[&profile=max] — what a CMS webhook would call.
// &wait=<ms>: through fleetcache's own `revalidate()` instead, waiting up to <ms> for its receipt
// (every live instance having applied it, or the ones that had not; docs/operating.md, "Receipts").
import { revalidatePath, revalidateTag } from 'next/cache'
export const dynamic = 'force-dynamic'
export async function POST(request) {
  const url = new URL(request.url)
  const path = url.searchParams.get('path')
  const tag = url.searchParams.get('tag')
  const profile = url.searchParams.get('profile')
  const wait = url.searchParams.get('wait')
  if (wait !== null) {
    // In an app that installed fleetcache from the registry: `import { revalidate } from
    // 'fleetcache'` (with `serverExternalPackages: ['fleetcache']`). This example links the
    // repository, which Next would bundle, so it requires the module Next loaded as cacheHandler.
    const { createRequire } = process.getBuiltinModule('node:module')
    const { revalidate } = createRequire(`${process.cwd()}/package.json`)('fleetcache')
    const receipt = await revalidate({ tags: tag ? [tag] : [], paths: path ? [path] : [], profile: profile || undefined, wait: true, timeoutMs: Number(wait) })
    return Response.json({ receipt, instance: process.env.FLEETCACHE_DEMO_INSTANCE })
  }
  if (path) revalidatePath(path)
  if (tag) profile ? revalidateTag(tag, profile) : revalidateTag(tag)
  return Response.json({ revalidated: { path, tag, profile }, instance: process.env.FLEETCACHE_DEMO_INSTANCE })
}
