import { unstable_cache } from 'next/cache'
import { stamp } from '../../../../lib/data'
// A page reading an unstable_cache result shared by the scenario's pages, tagged `conf-<scenario>`
// and `conf-<scenario>-u`.
export const revalidate = 3600
export async function generateStaticParams() {
  return [{ id: 'build' }]
}
export default async function ConfUcache({ params }) {
  const { id } = await params
  const group = decodeURIComponent(id).split('~')[0]
  const read = unstable_cache(async () => ({ stamp: stamp() }), ['conf', group], { tags: [`conf-${group}`, `conf-${group}-u`], revalidate: 3600 })
  const v = await read()
  return <main><h1>unstable_cache {id}</h1><p id="stamp">{v.stamp}</p></main>
}
