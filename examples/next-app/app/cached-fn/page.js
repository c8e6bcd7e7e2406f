import { unstable_cache } from 'next/cache'
import { stamp } from '../../lib/data'
export const revalidate = 3600
const cachedStamp = unstable_cache(async () => ({ stamp: stamp() }), ['cached-fn'], { tags: ['cached-fn'], revalidate: 3600 })
export default async function CachedFn() {
  const v = await cachedStamp()
  return <main><h1>unstable_cache (tag "cached-fn")</h1><p id="stamp">{v.stamp}</p></main>
}
