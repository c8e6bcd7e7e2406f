import { cacheTag } from 'next/cache'
import { stamp } from '../../../../lib/data'
// As /conf/uc, with a `'use cache: remote'` result (`cacheHandlers.remote`), one per page id.
export const dynamic = 'force-dynamic'
async function read(id) {
  'use cache: remote'
  const group = id.split('~')[0]
  cacheTag(`conf-${group}`, `conf-${group}-c`)
  return { stamp: stamp() }
}
export default async function ConfRemote({ params }) {
  const { id } = await params
  const v = await read(decodeURIComponent(id))
  return <main><h1>use cache: remote {id}</h1><p id="stamp">{v.stamp}</p></main>
}
