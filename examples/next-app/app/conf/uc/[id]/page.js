import { cacheTag } from 'next/cache'
import { stamp } from '../../../../lib/data'
// A page rendered at every request that reads a `'use cache'` result (Next 16, `cacheHandlers.default`)
// tagged `conf-<scenario>` and `conf-<scenario>-c`: the stamp shows whether the result was served or
// recomputed.
export const dynamic = 'force-dynamic'
async function read(group) {
  'use cache'
  cacheTag(`conf-${group}`, `conf-${group}-c`)
  return { stamp: stamp() }
}
export default async function ConfUseCache({ params }) {
  const { id } = await params
  const v = await read(decodeURIComponent(id).split('~')[0])
  return <main><h1>use cache {id}</h1><p id="stamp">{v.stamp}</p></main>
}
