// The differential suite's revalidations: POST /api/conf?tag=t[&profile=max|expire:N] |
// ?path=p[&type=layout|page] | ?expireTag=t | ?expirePath=p (Next 15's unstable_expire*).
import * as cache from 'next/cache'
export const dynamic = 'force-dynamic'
export async function POST(request) {
  const q = new URL(request.url).searchParams
  const tag = q.get('tag')
  const profile = q.get('profile')
  if (tag) {
    if (!profile) cache.revalidateTag(tag)
    else if (profile.startsWith('expire:')) cache.revalidateTag(tag, { expire: Number(profile.slice(7)) })
    else cache.revalidateTag(tag, profile)
  }
  if (q.get('path')) cache.revalidatePath(q.get('path'), q.get('type') || undefined)
  if (q.get('expireTag')) cache.unstable_expireTag(q.get('expireTag'))
  if (q.get('expirePath')) cache.unstable_expirePath(q.get('expirePath'))
  return Response.json({ ok: true })
}
