import { updateTag } from 'next/cache'
import { DATA_URL } from '../../../../lib/data'
// updateTag from a server action (Next 16): the form posts the scenario's tag; the suite submits
// it as a browser without JavaScript would. Reads the same fetch as /conf/fetch.
export const revalidate = 3600
export async function generateStaticParams() {
  return [{ id: 'build' }]
}
async function update(form) {
  'use server'
  updateTag(String(form.get('tag')))
}
export default async function ConfAction({ params }) {
  const { id } = await params
  const group = decodeURIComponent(id).split('~')[0]
  const res = await fetch(`${DATA_URL}/conf/${group}`, { next: { tags: [`conf-${group}`, `conf-${group}-f`], revalidate: 3600 } })
  const data = await res.json()
  return (
    <main>
      <h1>Action {id}</h1>
      <p id="stamp">{data.stamp}</p>
      <form action={update}><input type="hidden" name="tag" value={`conf-${group}`} /><button type="submit">updateTag</button></form>
    </main>
  )
}
