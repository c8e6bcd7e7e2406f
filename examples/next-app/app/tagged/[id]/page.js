import { DATA_URL } from '../../../lib/data'
// Rendered at request time (no params at build time) and kept as ISR, fed by a tagged fetch with
// its own revalidate: the pages of the `'max'` sequence in __test__/e2e/suite.mjs. Pages whose ids
// share the part before a `~` share one fetch and its tag (`/tagged/g~1` and `/tagged/g~2` both
// read `/tagged/g`, tagged `tagged-g`), so a scenario's revalidations touch nothing else.
export const revalidate = 3600
export async function generateStaticParams() {
  return []
}
export default async function Tagged({ params }) {
  const { id } = await params
  const group = decodeURIComponent(id).split('~')[0]
  const res = await fetch(`${DATA_URL}/tagged/${group}`, { next: { tags: [`tagged-${group}`], revalidate: 60 } })
  const data = await res.json()
  return <main><h1>Tagged {id}</h1><p id="stamp">{data.stamp}</p></main>
}
