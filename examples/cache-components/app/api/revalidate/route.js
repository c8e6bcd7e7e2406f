// POST /api/revalidate?tag=uc-items[&profile=max] | ?path=/uc/1 — what a CMS webhook would call.
import { revalidatePath, revalidateTag } from 'next/cache'
export async function POST(request) {
  const url = new URL(request.url)
  const path = url.searchParams.get('path')
  const tag = url.searchParams.get('tag')
  const profile = url.searchParams.get('profile')
  if (path) revalidatePath(path)
  // Without a profile: expire now (`{ expire: 0 }`, what one-argument revalidateTag did).
  if (tag) revalidateTag(tag, profile || { expire: 0 })
  return Response.json({ revalidated: { path, tag, profile } })
}
