import { DATA_URL } from '../../../../lib/data'
// A page fed by a tagged fetch: the scenario's pages share it (`<scenario>~1` and `<scenario>~2`
// both read /conf/<scenario>), tagged `conf-<scenario>` and `conf-<scenario>-f`.
export const revalidate = 3600
export async function generateStaticParams() {
  return [{ id: 'build' }]
}
export default async function ConfFetch({ params }) {
  const { id } = await params
  const group = decodeURIComponent(id).split('~')[0]
  const res = await fetch(`${DATA_URL}/conf/${group}`, { next: { tags: [`conf-${group}`, `conf-${group}-f`], revalidate: 3600 } })
  const data = await res.json()
  return <main><h1>Fetch {id}</h1><p id="stamp">{data.stamp}</p></main>
}
